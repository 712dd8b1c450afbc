"""Workflow runs and the state of their steps, stored as one document per run.

A run is ``running`` until every step is terminal, then ``succeeded`` (no step failed) or
``failed``; ``cancelled`` when cancelled. A step is ``pending`` until its needs are terminal,
then ``running`` (its jobs are submitted), ``skipped`` (its ``when`` was false, or a step it
needs was skipped or failed), and finally ``succeeded``, ``failed`` or ``cancelled``. Every save
of a run is a compare-and-swap on its ``revision``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any


class RunState(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self is not _RUNNING


class StepState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self not in _OPEN_STEP_STATES


# Module constants: an enum member looked up on its class is slow on the engine's hot path.
_RUNNING = RunState.RUNNING
_OPEN_STEP_STATES = frozenset({StepState.PENDING, StepState.RUNNING})


@dataclass(slots=True)
class StepRun:
    """One step of one run. ``jobs[i]`` is the job of item ``i`` (one item unless the step fans
    out with ``for_each``; ``items`` then holds the rendered list). ``tries`` counts run retries
    of this step: it is part of the jobs' idempotency keys, so a retry submits new jobs."""

    id: str
    state: StepState = StepState.PENDING
    tries: int = 0
    jobs: list[str | None] = field(default_factory=list)
    items: list[Any] | None = None
    output: Any = None
    error: str | None = None
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None

    def to_doc(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state.value,
            "tries": self.tries,
            "jobs": list(self.jobs),
            "items": self.items,
            "output": self.output,
            "error": self.error,
            "attempts": self.attempts,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> StepRun:
        return cls(
            id=doc["id"],
            state=StepState(doc["state"]),
            tries=int(doc.get("tries", 0)),
            jobs=list(doc.get("jobs") or []),
            items=doc.get("items"),
            output=doc.get("output"),
            error=doc.get("error"),
            attempts=int(doc.get("attempts", 0)),
            started_at=doc.get("started_at"),
            finished_at=doc.get("finished_at"),
        )


@dataclass(slots=True)
class Run:
    id: str
    tenant: str
    workflow: str
    version: int
    state: RunState
    inputs: dict[str, Any]
    steps: list[StepRun]
    created_at: float
    updated_at: float
    trigger: str = "api"
    finished_at: float | None = None
    error: str | None = None
    idempotency_key: str | None = None
    revision: int = 0

    def step(self, step_id: str) -> StepRun:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def to_doc(self) -> dict[str, Any]:
        """The parts of a run kept in its JSON document (the rest are indexed columns)."""
        return {
            "inputs": self.inputs,
            "steps": [s.to_doc() for s in self.steps],
            "trigger": self.trigger,
            "error": self.error,
        }

    @classmethod
    def from_columns(
        cls,
        *,
        id: str,
        tenant: str,
        workflow: str,
        version: int,
        state: str,
        doc: dict[str, Any],
        created_at: float,
        updated_at: float,
        finished_at: float | None,
        idempotency_key: str | None,
        revision: int,
    ) -> Run:
        return cls(
            id=id,
            tenant=tenant,
            workflow=workflow,
            version=version,
            state=RunState(state),
            inputs=doc.get("inputs") or {},
            steps=[StepRun.from_doc(s) for s in doc.get("steps") or []],
            created_at=created_at,
            updated_at=updated_at,
            trigger=doc.get("trigger", "api"),
            finished_at=finished_at,
            error=doc.get("error"),
            idempotency_key=idempotency_key,
            revision=revision,
        )

    def copy(self) -> Run:
        """A deep enough copy to change steps without touching the original."""
        return replace(self, steps=[replace(s, jobs=list(s.jobs)) for s in self.steps])


@dataclass(frozen=True, slots=True)
class WorkflowVersion:
    """One stored version of a workflow: the canonical definition dict and its source text."""

    tenant: str
    name: str
    version: int
    definition: dict[str, Any]
    created_at: float


@dataclass(frozen=True, slots=True)
class WorkflowInfo:
    """A workflow: its latest version, its inbound webhook token and secret, schedule state."""

    tenant: str
    name: str
    latest_version: int
    hook_token: str
    hook_secret: str
    created_at: float
    updated_at: float
    paused: bool = False


@dataclass(frozen=True, slots=True)
class Schedule:
    tenant: str
    workflow: str
    cron: str
    timezone: str
    catch_up: bool
    next_fire_at: float
    paused: bool = False


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """An event written in the same transaction as the change it describes."""

    type: str  # run.state | step.state | job.state | workflow.applied
    tenant: str
    data: dict[str, Any]
    ts: float
    id: int = 0  # assigned by the store


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    tenant: str
    url: str
    events: tuple[str, ...]  # patterns: "run.state", "job.*", "*"
    secret: str
    created_at: float

    def matches(self, event_type: str) -> bool:
        return wants(self.events, event_type)


def wants(patterns: Iterable[str], event_type: str) -> bool:
    """Whether an event type matches one of a subscription's patterns (a type, ``prefix.*``
    or ``*``)."""
    for pattern in patterns:
        if pattern in ("*", event_type):
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def wanted_events(
    events: Sequence[OutboxEvent], patterns: Mapping[str, Sequence[str]]
) -> list[OutboxEvent]:
    """The events some subscription wants: ``patterns`` are the subscriptions' patterns by
    tenant. Only these reach the outbox (the webhook relay is its only reader)."""
    return [e for e in events if wants(patterns.get(e.tenant, ()), e.type)]


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    tenant: str
    subscription_id: str
    event_id: int
    event_type: str
    body: dict[str, Any]
    state: DeliveryState
    attempts: int
    next_attempt_at: float
    created_at: float
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: float | None = None


def event_body(event: OutboxEvent) -> dict[str, Any]:
    """The JSON body delivered for an event; receivers de-duplicate on its ``id``."""
    return {
        "id": f"evt_{event.id}",
        "type": event.type,
        "tenant": event.tenant,
        "ts": event.ts,
        "data": event.data,
    }
