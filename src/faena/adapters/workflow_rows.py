"""Rows of the workflow tables → domain objects, shared by the SQL adapters (SQLite rows and
asyncpg records both index by position; each adapter selects the columns in this order)."""

from __future__ import annotations

from typing import Any

import orjson

from faena.domain.runs import (
    Delivery,
    DeliveryState,
    Run,
    Schedule,
    Subscription,
    WorkflowInfo,
    WorkflowVersion,
)


def workflow_info(r: Any) -> WorkflowInfo:
    return WorkflowInfo(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7]))


def workflow_version(r: Any) -> WorkflowVersion:
    return WorkflowVersion(r[0], r[1], r[2], orjson.loads(r[3]), r[4])


def run(r: Any) -> Run:
    return Run.from_columns(
        id=r[0],
        tenant=r[1],
        workflow=r[2],
        version=r[3],
        state=r[4],
        doc=orjson.loads(r[5]),
        created_at=r[6],
        updated_at=r[7],
        finished_at=r[8],
        idempotency_key=r[9],
        revision=r[10],
    )


def patch_job_ids(r: Run, found: dict[str, str]) -> Run:
    """A copy of ``r`` whose steps refer to ``found[id]`` instead of each planned job ``id``
    whose idempotency key was already taken (by the job stored earlier)."""
    out = r.copy()
    for step in out.steps:
        step.jobs = [None if j is None else found.get(j, j) for j in step.jobs]
    return out


def schedule(r: Any) -> Schedule:
    return Schedule(r[0], r[1], r[2], r[3], bool(r[4]), r[5], bool(r[6]))


def delivery(r: Any) -> Delivery:
    return Delivery(
        id=r[0],
        tenant=r[1],
        subscription_id=r[2],
        event_id=r[3],
        event_type=r[4],
        body=orjson.loads(r[5]),
        state=DeliveryState(r[6]),
        attempts=r[7],
        next_attempt_at=r[8],
        created_at=r[9],
        last_status=r[10],
        last_error=r[11],
        delivered_at=r[12],
    )


def subscription(r: Any) -> Subscription:
    return Subscription(r[0], r[1], r[2], tuple(orjson.loads(r[3])), r[4], r[5])
