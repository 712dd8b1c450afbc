"""The orchestrator: the use cases behind the jobs API (submit, read, cancel, retry, logs)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from faena.domain.auth import Principal, require_jobs_allowed
from faena.domain.errors import NotFound, ValidationError
from faena.domain.events import Event
from faena.domain.ids import new_ids
from faena.domain.jobs import DEFAULT_QUEUE, MAX_DELAY_S, Job, JobSpec, JobState
from faena.ports.bus import EventBus
from faena.ports.clock import Clock
from faena.ports.store import (
    CancelParams,
    JobPage,
    JobStore,
    ListParams,
    ReadLogsParams,
    RetryParams,
    StartNow,
    Stats,
    StoredLogChunk,
    SubmitParams,
    Submitted,
)
from faena.ports.telemetry import NULL_OBSERVER, JobObserver
from faena.services.batching import GroupCommitter
from faena.services.catalog import KindCatalog
from faena.services.kind_demand import KindDemand
from faena.services.progress import ProgressBoard

MAX_BATCH = 10_000
SUBMITS_PER_TRANSACTION = 64  # requests merged into one store transaction at most
LOG_PAGE = 1000
FOLLOW_POLL_S = 1.0  # fallback when no event arrives (another server may hold the job)


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A client's submission; ``None`` means "use the kind's default, else faena's"."""

    kind: str
    payload: Any = None
    queue: str | None = None
    priority: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    max_attempts: int | None = None
    timeout_s: float | None = None
    delay_s: float | None = None
    run_at: float | None = None
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    concurrency_limit: int = 1
    backoff_s: float | None = None
    backoff_max_s: float | None = None
    resources: dict[str, float] | None = None  # {"cpu": 1, "memory_mb": 512}
    parent_id: str | None = None  # the job that spawns it (an agent's tool call)


def state_event(job: Job, ts: float) -> Event:
    return Event(
        type="job.state",
        tenant=job.tenant,
        job_id=job.id,
        data={
            "state": job.state.value,
            "kind": job.kind,
            "queue": job.queue,
            "attempts": job.attempts,
            "error": job.error,
            "run_at": job.run_at,
        },
        ts=ts,
    )


class JobStarter(Protocol):
    """A local worker that takes submitted jobs at once when it has free slots (the pool)."""

    def reserve_starts(
        self, specs: Sequence[JobSpec], ids: Sequence[str], now: float
    ) -> StartNow | None: ...

    def settle_starts(self, start: StartNow, jobs: Sequence[Job]) -> None: ...


@dataclass(slots=True)
class _PendingSubmit:
    specs: list[JobSpec]
    ids: list[str]
    done: asyncio.Future[list[Submitted]]


class Orchestrator:
    def __init__(self, store: JobStore, bus: EventBus, clock: Clock, catalog: KindCatalog) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.catalog = catalog
        self._wake_hooks: list[Callable[[], None]] = []
        self._starter: JobStarter | None = None
        self.observer: JobObserver = NULL_OBSERVER
        # The latest progress of running jobs (the log writer's board; set by the root).
        self.progress: ProgressBoard | None = None
        self.demand = KindDemand(clock)  # kinds submitted lately: idle workers are reported
        self._submits: GroupCommitter[_PendingSubmit] = GroupCommitter(
            self._store_submits, max_batch=SUBMITS_PER_TRANSACTION, name="submits"
        )

    def set_observer(self, observer: JobObserver) -> None:
        """Report submits and cancels to ``observer`` (metrics, tracing)."""
        self.observer = observer

    def set_placement_explainer(
        self, explain: Callable[[Job], Awaitable[str | None]]
    ) -> None:
        """``explain(job)`` says why a queued job is not placed (the worker manager's)."""
        self._explain = explain

    async def explain_placement(self, job: Job) -> str | None:
        explain = getattr(self, "_explain", None)
        return None if explain is None else await explain(job)

    def set_starter(self, starter: JobStarter) -> None:
        """Offer each submit's jobs to ``starter`` first: those it takes are stored running."""
        self._starter = starter

    def on_runnable(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` whenever new work may be claimable (a submit, a retry)."""
        self._wake_hooks.append(hook)

    def _wake(self) -> None:
        for hook in self._wake_hooks:
            hook()

    def wake_claimers(self) -> None:
        """Work may have become claimable elsewhere (another server's submit, heard over the
        store's change feed): wake everything that claims here, as a local submit does."""
        self._wake()

    # -- submit ---------------------------------------------------------------------------

    def to_spec(
        self, tenant: str, request: JobRequest, now: float, known: frozenset[str] | None = None
    ) -> JobSpec:
        self.catalog.check(request.kind, request.payload, known)
        if request.delay_s is not None and request.run_at is not None:
            raise ValidationError("give delay_s or run_at, not both")
        run_at = request.run_at
        if request.delay_s is not None:
            if not (math.isfinite(request.delay_s) and 0 <= request.delay_s <= MAX_DELAY_S):
                raise ValidationError(f"delay_s must be between 0 and {MAX_DELAY_S:.0f}")
            run_at = now + request.delay_s
        elif run_at is not None and not (math.isfinite(run_at) and run_at <= now + MAX_DELAY_S):
            raise ValidationError("run_at must be at most a year ahead")
        defaults = self.catalog.defaults(request.kind)
        spec = JobSpec(
            kind=request.kind,
            payload=request.payload,
            tenant=tenant,
            queue=request.queue or (defaults and defaults.queue) or DEFAULT_QUEUE,
            priority=request.priority,
            labels=request.labels,
            max_attempts=request.max_attempts or (defaults and defaults.max_attempts) or 1,
            timeout_s=request.timeout_s or (defaults.timeout_s if defaults else None),
            run_at=run_at,
            idempotency_key=request.idempotency_key,
            concurrency_key=request.concurrency_key,
            concurrency_limit=request.concurrency_limit,
            backoff_s=1.0 if request.backoff_s is None else request.backoff_s,
            backoff_max_s=300.0 if request.backoff_max_s is None else request.backoff_max_s,
            resources=request.resources,
            parent_id=request.parent_id,
        )
        return spec.validate()

    async def submit(
        self,
        tenant: str,
        requests: Sequence[JobRequest],
        *,
        principal: Principal | None = None,
    ) -> list[Submitted]:
        """Validate every request first, then store them all in one transaction. A caller's
        ``principal`` must hold the scope of every code-running kind (``jobs:shell``); None is
        faena itself (the workflow engine submitting an approved workflow's steps)."""
        if not requests:
            raise ValidationError("submit at least one job")
        if principal is not None:
            require_jobs_allowed(principal, ((r.kind, r.payload) for r in requests))
        if len(requests) > MAX_BATCH:
            raise ValidationError(f"a batch holds at most {MAX_BATCH} jobs")
        now = self.clock.now()
        known = self.catalog.kinds()
        specs = []
        for i, request in enumerate(requests):
            try:
                specs.append(self.to_spec(tenant, request, now, known))
            except ValidationError as e:
                if len(requests) == 1:
                    raise
                raise ValidationError(f"job {i}: {e.message}") from None
        traceparent = self.observer.traceparent()
        if traceparent is not None:  # the job's attempts join the submitter's trace
            specs = [replace(spec, traceparent=traceparent) for spec in specs]
        done: asyncio.Future[list[Submitted]] = asyncio.get_running_loop().create_future()
        self._submits.add(_PendingSubmit(specs, new_ids(len(specs)), done))
        return await done

    async def _store_submits(self, pending: Sequence[_PendingSubmit]) -> None:
        """Group commit of submits: requests that arrive while one transaction is in flight
        share the next one, so 100 clients submitting single jobs cost a few transactions, not
        100. Each caller gets its own jobs back, or the store's error."""
        now = self.clock.now()
        specs = [spec for p in pending for spec in p.specs]
        ids = [job_id for p in pending for job_id in p.ids]
        starter = self._starter
        starting = None if starter is None else starter.reserve_starts(specs, ids, now)
        try:
            submitted = await self.store.submit_many(
                SubmitParams(specs=specs, ids=ids, now=now, start=starting)
            )
        except Exception as e:
            if starting is not None and starter is not None:
                starter.settle_starts(starting, [])
            for p in pending:
                if not p.done.done():
                    p.done.set_exception(e)
            return
        start = 0
        for p in pending:
            end = start + len(p.specs)
            if not p.done.done():  # a caller that went away still has its jobs stored
                p.done.set_result(submitted[start:end])
            start = end
        created = [s.job for s in submitted if s.created]
        self.bus.publish([state_event(job, now) for job in created])
        self.observer.submitted(created)
        self.demand.note({job.kind for job in created})
        started: list[Job] = []
        if starting is not None and starter is not None:
            started = [j for j in created if j.state is JobState.RUNNING and j.id in starting.ids]
            starter.settle_starts(starting, started)
        if len(started) < len(created):
            self._wake()

    # -- reads ----------------------------------------------------------------------------

    async def get(self, tenant: str, job_id: str) -> Job:
        job = await self.store.get(tenant, job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return job

    async def wait(self, tenant: str, job_id: str, timeout_s: float) -> Job:
        """The job once it is terminal, or as it is after ``timeout_s``."""
        with closing(self.bus.subscribe(tenant=tenant, job_id=job_id)) as sub:
            job = await self.get(tenant, job_id)
            deadline = asyncio.get_running_loop().time() + timeout_s
            while not job.is_terminal:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    async with asyncio.timeout(min(left, FOLLOW_POLL_S)):
                        event = await sub.get()
                    if event.type != "job.state" or event.data.get("state") in (None, "running"):
                        continue
                except TimeoutError:
                    pass
                job = await self.get(tenant, job_id)
            return job

    async def list_jobs(self, params: ListParams) -> JobPage:
        return await self.store.list_jobs(params)

    async def stats(self, tenant: str) -> Stats:
        return await self.store.stats(tenant)

    # -- changes --------------------------------------------------------------------------

    async def cancel(self, tenant: str, job_id: str) -> Job:
        now = self.clock.now()
        job = await self.store.cancel(CancelParams(tenant=tenant, job_id=job_id, now=now))
        self.bus.publish([state_event(job, now)])
        self.observer.cancelled(job)
        return job

    async def retry(
        self, tenant: str, job_id: str, *, principal: Principal | None = None
    ) -> Job:
        if principal is not None:  # retrying a shell job runs its command again
            job = await self.get(tenant, job_id)
            require_jobs_allowed(principal, [(job.kind, job.payload)])
        now = self.clock.now()
        job = await self.store.retry(RetryParams(tenant=tenant, job_id=job_id, now=now))
        self.bus.publish([state_event(job, now)])
        self._wake()
        return job

    # -- logs -----------------------------------------------------------------------------

    async def read_logs(
        self, tenant: str, job_id: str, after: int = 0, limit: int = LOG_PAGE
    ) -> list[StoredLogChunk]:
        await self.get(tenant, job_id)
        return await self.store.read_logs(
            ReadLogsParams(tenant=tenant, job_id=job_id, after=after, limit=limit)
        )

    async def follow_logs(
        self, tenant: str, job_id: str, after: int = 0
    ) -> AsyncIterator[StoredLogChunk]:
        """Stored chunks after ``after``, then new ones as they are written, until the job is
        terminal and everything it wrote has been yielded."""
        with closing(self.bus.subscribe(tenant=tenant, job_id=job_id)) as sub:
            await self.get(tenant, job_id)
            while True:
                chunks = await self.store.read_logs(
                    ReadLogsParams(tenant=tenant, job_id=job_id, after=after, limit=LOG_PAGE)
                )
                for stored in chunks:
                    yield stored
                    after = stored.cursor
                if len(chunks) == LOG_PAGE:
                    continue
                job = await self.get(tenant, job_id)
                if job.is_terminal:
                    # The pool writes a job's logs before its outcome: what is left is final.
                    while chunks := await self.store.read_logs(
                        ReadLogsParams(tenant=tenant, job_id=job_id, after=after, limit=LOG_PAGE)
                    ):
                        for stored in chunks:
                            yield stored
                            after = stored.cursor
                    return
                try:
                    async with asyncio.timeout(FOLLOW_POLL_S):
                        await sub.get()
                except TimeoutError:
                    pass
