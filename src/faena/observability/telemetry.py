"""The process's JobObserver: metrics always, spans when tracing is on."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

import structlog

from faena.domain.jobs import Job
from faena.observability.metrics import Metrics
from faena.observability.tracing import Tracing
from faena.ports.store import JobStore
from faena.ports.telemetry import NoteOutcome


def _ignore(succeeded: bool, error: str | None) -> None:
    pass


def log_context(job: Job) -> dict[str, object]:
    """What every log line about ``job`` carries: its id, tenant, and the workflow run it is
    a step of (step jobs' idempotency keys are ``wf:RUN:STEP:...``)."""
    key = job.idempotency_key
    if key is not None and key.startswith("wf:"):
        return {"job_id": job.id, "tenant": job.tenant, "run_id": key.split(":", 2)[1]}
    return {"job_id": job.id, "tenant": job.tenant}


class _Untraced:
    """The attempt context when tracing is off: nothing to enter or leave."""

    __slots__ = ()

    def __enter__(self) -> NoteOutcome:
        return _ignore

    def __exit__(self, *exc: object) -> None:
        return None


_UNTRACED = _Untraced()


class Telemetry:
    """``metrics_on=False`` (``FAENA_METRICS=false``): nothing is recorded, no ``/metrics``."""

    def __init__(
        self, metrics: Metrics, tracing: Tracing | None = None, *, metrics_on: bool = True
    ) -> None:
        self.metrics = metrics
        self.tracing = tracing
        self.metrics_on = metrics_on

    @property
    def enabled(self) -> bool:
        return self.metrics_on or self.tracing is not None

    def submitted(self, jobs: Sequence[Job]) -> None:
        if self.metrics_on:
            self.metrics.record_submitted(jobs)

    def started(self, jobs: Sequence[Job], now: float) -> None:
        if self.metrics_on:
            self.metrics.record_started(jobs, now)

    def completed(self, jobs: Sequence[Job], now: float) -> None:
        if self.metrics_on:
            self.metrics.record_completed(jobs, now)

    def cancelled(self, job: Job) -> None:
        if self.metrics_on:
            self.metrics.record_cancelled(job)

    def expired(self, jobs: Sequence[Job]) -> None:
        if self.metrics_on:
            self.metrics.record_expired(jobs)

    def attempt(self, job: Job) -> AbstractContextManager[NoteOutcome]:
        # The pool runs each attempt in a task of its own, whose context is a copy: what is
        # bound here stays with this job's log lines and goes away with the task, so no reset
        # is needed (and none is paid for: this runs once per job on the hot path).
        structlog.contextvars.bind_contextvars(**log_context(job))
        if self.tracing is None:
            return _UNTRACED
        return self.tracing.attempt(job)

    def traceparent(self) -> str | None:
        return None if self.tracing is None else self.tracing.current_traceparent()

    def wrap_store(self, store: JobStore) -> JobStore:
        """``store`` with its operations timed (and traced, sampled, when tracing is on)."""
        if not self.enabled:
            return store
        from faena.observability.store import timed

        return timed(store, self.metrics, self.tracing)
