"""The telemetry port: what the services tell metrics and tracing about jobs, in batches.

Services call these hooks once per batch they already make (a submit, a claim, a group-committed
batch of outcomes), never once per job inside a lock, so the hot path stays cheap. The default
observer does nothing; ``faena.observability`` provides the real one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol

from faena.domain.jobs import Job


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """Jobs of one queue in one unfinished state, across tenants; ``oldest`` is the earliest
    time one of them became runnable (``run_at`` or ``created_at``)."""

    queue: str
    state: str
    count: int
    oldest: float | None


class QueueDepthSource(Protocol):
    """A store that can count unfinished jobs per queue cheaply (for ``/metrics``)."""

    async def queue_depths(self) -> list[QueueDepth]: ...


NoteOutcome = Callable[[bool, "str | None"], None]


def _ignore(succeeded: bool, error: str | None) -> None:
    pass


@contextmanager
def _no_span() -> Iterator[NoteOutcome]:
    yield _ignore


class JobObserver(Protocol):
    def submitted(self, jobs: Sequence[Job]) -> None:
        """Jobs newly stored (idempotent repeats excluded)."""

    def started(self, jobs: Sequence[Job], now: float) -> None:
        """Jobs claimed by a worker of this process: their attempt starts ``now``."""

    def completed(self, jobs: Sequence[Job], now: float) -> None:
        """Jobs as they are after a batch of attempt outcomes was applied: terminal, or
        ``scheduled``/``queued`` again for a retry."""

    def cancelled(self, job: Job) -> None: ...

    def expired(self, jobs: Sequence[Job]) -> None:
        """Jobs whose lease ended: queued again, or failed when no attempts were left."""

    def attempt(self, job: Job) -> AbstractContextManager[NoteOutcome]:
        """Wraps the execution of one attempt (a tracing span); the pool calls the function it
        yields with the attempt's outcome (succeeded, error)."""

    def traceparent(self) -> str | None:
        """The W3C ``traceparent`` of the current span, stored with submitted jobs so their
        execution joins the submitter's trace; None when tracing is off."""


class NullObserver:
    def submitted(self, jobs: Sequence[Job]) -> None:
        pass

    def started(self, jobs: Sequence[Job], now: float) -> None:
        pass

    def completed(self, jobs: Sequence[Job], now: float) -> None:
        pass

    def cancelled(self, job: Job) -> None:
        pass

    def expired(self, jobs: Sequence[Job]) -> None:
        pass

    def attempt(self, job: Job) -> AbstractContextManager[NoteOutcome]:
        return _no_span()

    def traceparent(self) -> str | None:
        return None


NULL_OBSERVER: JobObserver = NullObserver()
