"""JSON shapes of workflows, versions, runs, schedules, subscriptions and deliveries."""

from __future__ import annotations

from typing import Any

from faena.api.schemas import iso
from faena.domain.jobs import Job
from faena.domain.runs import (
    Delivery,
    Run,
    Schedule,
    StepRun,
    Subscription,
    WorkflowInfo,
    WorkflowVersion,
)


def workflow_to_json(
    info: WorkflowInfo, *, secrets: bool, schedule: Schedule | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": info.name,
        "tenant": info.tenant,
        "latest_version": info.latest_version,
        "created_at": iso(info.created_at),
        "updated_at": iso(info.updated_at),
        "webhook_path": f"/v1/hooks/{info.hook_token}" if secrets else None,
    }
    if secrets:
        out["webhook_secret"] = info.hook_secret
    if schedule is not None:
        out["schedule"] = schedule_to_json(schedule)
    return out


def schedule_to_json(schedule: Schedule) -> dict[str, Any]:
    return {
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "catch_up": schedule.catch_up,
        "paused": schedule.paused,
        "next_fire_at": iso(schedule.next_fire_at),
    }


def version_to_json(version: WorkflowVersion) -> dict[str, Any]:
    return {
        "name": version.name,
        "version": version.version,
        "created_at": iso(version.created_at),
        "definition": version.definition,
    }


def step_to_json(step: StepRun) -> dict[str, Any]:
    return {
        "id": step.id,
        "state": step.state.value,
        "attempts": step.attempts,
        "tries": step.tries,
        "jobs": step.jobs,
        "items": None if step.items is None else len(step.items),
        "output": step.output,
        "error": step.error,
        "started_at": iso(step.started_at),
        "finished_at": iso(step.finished_at),
    }


def child_to_json(job: Job) -> dict[str, Any]:
    """A job a step's job spawned (an agent's tool call), as a run lists it."""
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state.value,
        "parent_id": job.parent_id,
        "error": job.error,
        "created_at": iso(job.created_at),
        "finished_at": iso(job.finished_at),
    }


def run_to_json(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "tenant": run.tenant,
        "workflow": run.workflow,
        "version": run.version,
        "state": run.state.value,
        "inputs": run.inputs,
        "trigger": run.trigger,
        "error": run.error,
        "created_at": iso(run.created_at),
        "updated_at": iso(run.updated_at),
        "finished_at": iso(run.finished_at),
        "steps": [step_to_json(s) for s in run.steps],
    }


def subscription_to_json(sub: Subscription, *, secret: bool = False) -> dict[str, Any]:
    out = {
        "id": sub.id,
        "url": sub.url,
        "events": list(sub.events),
        "created_at": iso(sub.created_at),
    }
    if secret:
        out["secret"] = sub.secret
    return out


def delivery_to_json(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "subscription_id": d.subscription_id,
        "event_id": d.body.get("id"),
        "event_type": d.event_type,
        "state": d.state.value,
        "attempts": d.attempts,
        "next_attempt_at": iso(d.next_attempt_at),
        "last_status": d.last_status,
        "last_error": d.last_error,
        "created_at": iso(d.created_at),
        "delivered_at": iso(d.delivered_at),
        "body": d.body,
    }
