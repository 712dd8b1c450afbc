"""Helpers for contract tests: build specs, submit, claim and finish jobs in one line."""

from __future__ import annotations

from typing import Any

from faena.domain.ids import new_id
from faena.domain.jobs import Job, JobSpec, JobState
from faena.ports.store import (
    CancelParams,
    ClaimParams,
    CompleteParams,
    Completion,
    JobStore,
    SubmitParams,
)

NOW = 1_700_000_000.0
LEASE_S = 30.0


async def submit(store: JobStore, *specs: JobSpec, now: float = NOW) -> list[Job]:
    """Store ``specs`` (fresh ids, in order) and return the jobs."""
    ids = [new_id() for _ in specs]
    return [s.job for s in await store.submit_many(SubmitParams(list(specs), ids, now))]


async def submit_one(store: JobStore, kind: str = "noop", **fields: Any) -> Job:
    (job,) = await submit(store, JobSpec(kind=kind, **fields))
    return job


async def claim(
    store: JobStore,
    limit: int = 100,
    *,
    now: float = NOW,
    worker_id: str = "w1",
    lease_s: float = LEASE_S,
    **filters: Any,
) -> list[Job]:
    params = ClaimParams(worker_id=worker_id, limit=limit, lease_s=lease_s, now=now, **filters)
    return await store.claim(params)


async def start_one(store: JobStore, **fields: Any) -> Job:
    """Submit one job and claim it: the running job."""
    job = await submit_one(store, **fields)
    (running,) = await claim(store, 1)
    assert running.id == job.id
    return running


async def complete(
    store: JobStore, job: Job, state: JobState, *, now: float = NOW, **fields: Any
) -> list[Job]:
    completion = Completion(job_id=job.id, attempt=job.attempts, state=state, **fields)
    return await store.complete_many(CompleteParams([completion], now))


async def in_state(store: JobStore, state: JobState, **fields: Any) -> Job:
    """A job brought to ``state`` through the store's own operations.

    Running and later states claim the oldest queued job: call it before queuing others."""
    if state is JobState.QUEUED:
        return await submit_one(store, **fields)
    if state is JobState.SCHEDULED:
        return await submit_one(store, run_at=NOW + 3600, **fields)
    running = await start_one(store, **fields)
    if state is JobState.RUNNING:
        return running
    if state is JobState.CANCELLED:
        return await store.cancel(CancelParams(running.tenant, running.id, NOW))
    (done,) = await complete(
        store, running, state, error="boom" if state is JobState.FAILED else None
    )
    return done
