"""Jobs and their state machine.

A job moves ``queued`` → ``running`` → ``succeeded`` | ``failed`` | ``cancelled``, with
``scheduled`` for a job that waits for its ``run_at`` or a retry backoff. Every transition is a
compare-and-swap in the store: the store applies a change only if the row is still in the state
(and, for a running job, the attempt) the caller saw. Times are float seconds since the epoch.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any

from faena.domain.errors import Conflict, ValidationError

DEFAULT_TENANT = "default"
DEFAULT_QUEUE = "default"

MAX_PRIORITY = 1_000_000
MAX_ATTEMPTS_LIMIT = 1_000
MAX_TIMEOUT_S = 7 * 24 * 3600.0
MAX_DELAY_S = 366 * 24 * 3600.0
MAX_NAME_LENGTH = 200


class JobState(enum.StrEnum):
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
RUNNABLE_STATES = frozenset({JobState.QUEUED, JobState.SCHEDULED})

# Which state may follow which. Anything else is refused by `check_transition`.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.SCHEDULED}),
    JobState.SCHEDULED: frozenset({JobState.QUEUED, JobState.RUNNING, JobState.CANCELLED}),
    JobState.RUNNING: frozenset(
        {
            JobState.SUCCEEDED,
            JobState.FAILED,
            JobState.CANCELLED,
            JobState.QUEUED,  # lease expired, attempts left
            JobState.SCHEDULED,  # failed attempt, retry after backoff
        }
    ),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset({JobState.QUEUED}),  # manual retry
    JobState.CANCELLED: frozenset({JobState.QUEUED}),  # manual retry
}


def check_transition(current: JobState, target: JobState) -> None:
    """Raise :class:`Conflict` unless ``current`` may move to ``target``."""
    if target not in TRANSITIONS[current]:
        raise Conflict(f"job is {current.value}; it cannot become {target.value}")


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a client asks for: a job before it is stored. Validated by :meth:`validate`."""

    kind: str
    payload: Any = None
    tenant: str = DEFAULT_TENANT
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    max_attempts: int = 1
    timeout_s: float | None = None
    run_at: float | None = None
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    concurrency_limit: int = 1
    backoff_s: float = 1.0
    backoff_max_s: float = 300.0
    traceparent: str | None = None  # W3C trace context of the submitter (tracing on)
    resources: dict[str, float] | None = None  # {"cpu": 1, "memory_mb": 512}: for placement
    parent_id: str | None = None  # the job that spawned this one (an agent's tool call)

    def validate(self) -> JobSpec:
        _check_name("kind", self.kind)
        _check_name("queue", self.queue)
        _check_name("tenant", self.tenant)
        if not -MAX_PRIORITY <= self.priority <= MAX_PRIORITY:
            raise ValidationError(f"priority must be between -{MAX_PRIORITY} and {MAX_PRIORITY}")
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS_LIMIT:
            raise ValidationError(f"max_attempts must be between 1 and {MAX_ATTEMPTS_LIMIT}")
        if self.timeout_s is not None and not 0 < self.timeout_s <= MAX_TIMEOUT_S:
            raise ValidationError(f"timeout_s must be > 0 and at most {MAX_TIMEOUT_S:.0f}")
        if not 1 <= self.concurrency_limit <= 10_000:
            raise ValidationError("concurrency_limit must be between 1 and 10000")
        if not 0 <= self.backoff_s <= 86_400 or not 0 <= self.backoff_max_s <= 7 * 86_400:
            raise ValidationError("backoff_s and backoff_max_s must be non-negative and bounded")
        for key in (self.idempotency_key, self.concurrency_key, self.parent_id):
            if key is not None and not 0 < len(key) <= MAX_NAME_LENGTH:
                raise ValidationError(f"keys must be 1 to {MAX_NAME_LENGTH} characters")
        if self.resources is not None:
            from faena.domain.placement import parse_resources

            parse_resources(self.resources)
        for k, v in self.labels.items():
            if not isinstance(k, str) or not isinstance(v, str) or not k or len(k) > 100:
                raise ValidationError("labels must map non-empty strings to strings")
        return self


def _check_name(what: str, value: str) -> None:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_LENGTH:
        raise ValidationError(f"{what} must be a non-empty string of at most {MAX_NAME_LENGTH}")
    # str.isprintable() is false for every whitespace character but the ASCII space.
    if " " in value or not value.isprintable():
        raise ValidationError(f"{what} must not contain spaces or control characters")


@dataclass(frozen=True, slots=True)
class Job:
    """A stored job. ``attempts`` counts claims; the current attempt is the fencing token."""

    id: str
    tenant: str
    kind: str
    queue: str
    state: JobState
    payload: Any
    priority: int
    labels: dict[str, str]
    max_attempts: int
    attempts: int
    created_at: float
    run_at: float | None = None
    timeout_s: float | None = None
    result: Any = None
    error: str | None = None
    worker_id: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    lease_expires_at: float | None = None
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    concurrency_limit: int = 1
    backoff_s: float = 1.0
    backoff_max_s: float = 300.0
    traceparent: str | None = None
    resources: dict[str, float] | None = None  # what it declared it needs (remote placement)
    parent_id: str | None = None  # the job that spawned it (an agent's tool call); None: none

    @classmethod
    def from_spec(cls, job_id: str, spec: JobSpec, now: float) -> Job:
        """A new job: ``scheduled`` when it must wait for ``run_at``, ``queued`` otherwise."""
        delayed = spec.run_at is not None and spec.run_at > now
        return cls(
            id=job_id,
            tenant=spec.tenant,
            kind=spec.kind,
            queue=spec.queue,
            state=JobState.SCHEDULED if delayed else JobState.QUEUED,
            payload=spec.payload,
            priority=spec.priority,
            labels=dict(spec.labels),
            max_attempts=spec.max_attempts,
            attempts=0,
            created_at=now,
            run_at=spec.run_at if delayed else None,
            timeout_s=spec.timeout_s,
            idempotency_key=spec.idempotency_key,
            concurrency_key=spec.concurrency_key,
            concurrency_limit=spec.concurrency_limit,
            backoff_s=spec.backoff_s,
            backoff_max_s=spec.backoff_max_s,
            traceparent=spec.traceparent,
            resources=None if spec.resources is None else dict(spec.resources),
            parent_id=spec.parent_id,
        )

    def started(self, worker_id: str, now: float, lease_s: float) -> Job:
        """This job claimed by ``worker_id`` at ``now``: its next attempt, leased for
        ``lease_s`` (what every store's claim does to a row)."""
        return replace(
            self,
            state=JobState.RUNNING,
            attempts=self.attempts + 1,
            worker_id=worker_id,
            started_at=now,
            lease_expires_at=now + lease_s,
            run_at=None,
        )

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def attempts_left(self) -> bool:
        return self.attempts < self.max_attempts

    def evolve(self, **changes: Any) -> Job:
        return replace(self, **changes)


def labels_match(required: dict[str, str], offered: dict[str, str]) -> bool:
    """True when a worker offering ``offered`` labels satisfies a job requiring ``required``."""
    return all(offered.get(k) == v for k, v in required.items())
