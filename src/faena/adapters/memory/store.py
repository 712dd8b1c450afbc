"""A JobStore held in dicts and heaps: the reference adapter, and the store of ``faena.testing``.

It has exactly the semantics of the SQL stores (the contract suite runs against all of them):
payloads and results are kept as encoded JSON, so what a caller later does with the objects it
passed in or got back never changes what is stored, and a value JSON cannot hold is refused at
submit time, as a database would refuse it. Every method is ``async`` for the port's sake but
never awaits: each operation is atomic with respect to the event loop.

Jobs are stored as mutable rows and exported as fresh :class:`Job` objects. Indexes kept next
to them change with a row's state (:meth:`MemoryStore._move` and ``_after_move``):

- a heap of ``(-priority, id)`` for queued jobs, a heap of ``(run_at, id)`` for scheduled jobs;
  entries are dropped lazily when they are popped and no longer describe the job;
- the running jobs, and how many run per ``(tenant, concurrency_key)``;
- counts per tenant, queue and state, so ``stats`` is cheap;
- job ids per tenant, sorted on demand, for newest-first listing.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import fields, replace
from typing import Any

import orjson

from faena.adapters.memory.ai_cache import MemoryAiCache
from faena.adapters.memory.artefacts import MemoryArtefacts
from faena.adapters.memory.audit import MemoryAudit
from faena.adapters.memory.llm import MemoryLlm
from faena.adapters.memory.mail import MemoryMail
from faena.adapters.memory.secrets import MemorySecrets
from faena.adapters.memory.tenants import MemoryTenants
from faena.adapters.memory.workers import MemoryWorkers
from faena.adapters.memory.workflows import MemoryWorkflows
from faena.domain.auth import ApiKey
from faena.domain.errors import Conflict, NotFound, ValidationError
from faena.domain.jobs import TERMINAL_STATES, TRANSITIONS, Job, JobState, labels_match
from faena.domain.logs import LogChunk
from faena.ports.store import (
    CancelParams,
    ClaimParams,
    CompleteParams,
    Completion,
    ExpireLeasesParams,
    ExtendLeasesParams,
    JobPage,
    ListParams,
    PurgeParams,
    ReadLogsParams,
    RetryParams,
    Stats,
    StoredLogChunk,
    SubmitParams,
    Submitted,
)
from faena.ports.telemetry import QueueDepth

SCHEMA_VERSION = 1  # the in-memory layout has a single version; reported for parity
_ALL_STATES = tuple(JobState)
_RETRYABLE = frozenset({JobState.FAILED, JobState.CANCELLED})
_JOB_FIELDS = tuple(f.name for f in fields(Job))
_NULL = b"null"


class _Row:
    """A stored job, changed in place; ``payload`` and ``result`` are encoded JSON."""

    __slots__ = _JOB_FIELDS

    id: str
    tenant: str
    kind: str
    queue: str
    state: JobState
    payload: bytes
    priority: int
    labels: dict[str, str]
    max_attempts: int
    attempts: int
    created_at: float
    run_at: float | None
    timeout_s: float | None
    result: bytes
    error: str | None
    worker_id: str | None
    started_at: float | None
    finished_at: float | None
    lease_expires_at: float | None
    idempotency_key: str | None
    concurrency_key: str | None
    concurrency_limit: int
    backoff_s: float
    backoff_max_s: float
    traceparent: str | None
    resources: dict[str, float] | None
    parent_id: str | None

    @classmethod
    def of(cls, job: Job, payload: bytes) -> _Row:
        row = cls()
        for name in _JOB_FIELDS:
            setattr(row, name, getattr(job, name))
        row.payload, row.result, row.labels = payload, _NULL, dict(job.labels)
        return row

    def export(self) -> Job:
        """The job as callers see it: decoded JSON and a labels dict of its own."""
        return Job(
            id=self.id,
            tenant=self.tenant,
            kind=self.kind,
            queue=self.queue,
            state=self.state,
            payload=orjson.loads(self.payload),
            priority=self.priority,
            labels=dict(self.labels),
            max_attempts=self.max_attempts,
            attempts=self.attempts,
            created_at=self.created_at,
            run_at=self.run_at,
            timeout_s=self.timeout_s,
            result=orjson.loads(self.result),
            error=self.error,
            worker_id=self.worker_id,
            started_at=self.started_at,
            finished_at=self.finished_at,
            lease_expires_at=self.lease_expires_at,
            idempotency_key=self.idempotency_key,
            concurrency_key=self.concurrency_key,
            concurrency_limit=self.concurrency_limit,
            backoff_s=self.backoff_s,
            backoff_max_s=self.backoff_max_s,
            traceparent=self.traceparent,
            resources=None if self.resources is None else dict(self.resources),
            parent_id=self.parent_id,
        )


class MemoryStore(
    MemorySecrets,
    MemoryTenants,
    MemoryAudit,
    MemoryLlm,
    MemoryAiCache,
    MemoryArtefacts,
    MemoryMail,
    MemoryWorkflows,
    MemoryWorkers,
):
    """A fast, process-local :class:`~faena.ports.store.JobStore` for tests and demos."""

    supports_notify = False

    def __init__(self) -> None:
        self._jobs: dict[str, _Row] = {}
        self._idempotency: dict[tuple[str, str], str] = {}
        self._ready: list[tuple[int, str]] = []
        self._scheduled: list[tuple[float, str]] = []
        self._running: set[str] = set()
        self._running_by_key: Counter[tuple[str, str]] = Counter()
        self._counts: defaultdict[str, Counter[tuple[str, JobState]]] = defaultdict(Counter)
        self._tenant_ids: defaultdict[str, list[str]] = defaultdict(list)
        self._tenant_ids_sorted: dict[str, bool] = {}
        self._logs: defaultdict[tuple[str, str], list[StoredLogChunk]] = defaultdict(list)
        self._log_cursor = 0
        self._keys: dict[str, ApiKey] = {}

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Nothing to connect to; safe to call more than once."""

    async def close(self) -> None:
        """Nothing to release; the data lives as long as the object."""

    async def ping(self) -> None:
        """Always answers."""

    async def schema_version(self) -> int:
        return SCHEMA_VERSION

    # -- jobs: hot path --------------------------------------------------------------------

    async def submit_many(self, params: SubmitParams) -> list[Submitted]:
        if len(params.specs) != len(params.ids):
            raise ValidationError("submit needs exactly one id per spec")
        payloads = [_encode(spec.payload, "payload") for spec in params.specs]
        # Decide everything before changing anything: a batch is stored whole or not at all.
        batch_keys: dict[tuple[str, str], str] = {}
        new_ids: set[str] = set()
        plan: list[str | None] = []  # per spec: the id of an earlier job, or None to create
        for job_id, spec in zip(params.ids, params.specs, strict=True):
            if spec.idempotency_key is not None:
                key = (spec.tenant, spec.idempotency_key)
                earlier = self._idempotency.get(key) or batch_keys.get(key)
                if earlier is not None:
                    plan.append(earlier)
                    continue
                batch_keys[key] = job_id
            if job_id in self._jobs or job_id in new_ids:
                raise Conflict(f"job id {job_id} already exists")
            new_ids.add(job_id)
            plan.append(None)
        out: list[Submitted] = []
        for job_id, spec, payload, earlier in zip(
            params.ids, params.specs, payloads, plan, strict=True
        ):
            if earlier is not None:
                out.append(Submitted(self._jobs[earlier].export(), created=False))
                continue
            job = params.new_job(job_id, spec)
            self._insert(_Row.of(job, payload))
            out.append(Submitted(job, created=True))
        self._idempotency.update(batch_keys)
        return out

    async def claim(self, params: ClaimParams) -> list[Job]:
        self._promote_due(params.now)
        claimed: list[Job] = []
        passed_over: list[tuple[int, str]] = []
        seen: set[str] = set()
        ready = self._ready
        while ready and len(claimed) < params.limit:
            entry = heapq.heappop(ready)
            row = self._jobs[entry[1]]
            if row.state is not JobState.QUEUED or row.id in seen:
                continue  # a stale entry: the job left the queue after it was pushed
            seen.add(row.id)
            if not self._claimable(row, params):
                passed_over.append(entry)
                continue
            self._move(row, JobState.RUNNING)
            row.attempts += 1
            row.started_at = params.now
            row.worker_id = params.worker_id
            row.lease_expires_at = params.now + params.lease_s
            row.run_at = None
            claimed.append(row.export())
        for entry in passed_over:
            heapq.heappush(ready, entry)
        return claimed

    async def extend_leases(self, params: ExtendLeasesParams) -> list[str]:
        extended: list[str] = []
        for ref in params.leases:
            row = self._jobs.get(ref.job_id)
            if row is None or not _holds(row, ref.attempt) or row.worker_id != params.worker_id:
                continue
            row.lease_expires_at = params.now + params.lease_s
            extended.append(row.id)
        return extended

    async def complete_many(self, params: CompleteParams) -> list[Job]:
        outcomes = [(c, _encode(c.result, "result")) for c in params.completions]
        for completion, _ in outcomes:
            check_completion(completion)
        done: list[Job] = []
        for c, result in outcomes:
            row = self._jobs.get(c.job_id)
            if row is None or not _holds(row, c.attempt):
                continue
            self._move(row, c.state)
            row.result = result
            row.error = c.error
            row.run_at = c.run_at if c.state is JobState.SCHEDULED else None
            row.finished_at = params.now if c.state in TERMINAL_STATES else None
            row.lease_expires_at = None
            self._after_move(row)
            done.append(row.export())
        return done

    # -- jobs: control ---------------------------------------------------------------------

    async def cancel(self, params: CancelParams) -> Job:
        row = self._owned(params.tenant, params.job_id)
        if row.state in TERMINAL_STATES:
            raise Conflict(f"job is {row.state.value}; it cannot be cancelled")
        self._move(row, JobState.CANCELLED)
        row.finished_at = params.now
        row.lease_expires_at = row.run_at = None
        return row.export()

    async def retry(self, params: RetryParams) -> Job:
        row = self._owned(params.tenant, params.job_id)
        if row.state not in _RETRYABLE:
            raise Conflict(
                f"job is {row.state.value}; only failed or cancelled jobs can be retried"
            )
        self._move(row, JobState.QUEUED)
        row.attempts = 0
        row.result = _NULL
        row.error = row.finished_at = row.started_at = row.worker_id = None
        row.lease_expires_at = row.run_at = None
        self._after_move(row)
        return row.export()

    async def expire_leases(self, params: ExpireLeasesParams) -> list[Job]:
        ended = [
            row
            for row in map(self._jobs.__getitem__, self._running)
            if row.lease_expires_at is not None and row.lease_expires_at < params.now
        ]
        ended.sort(key=lambda row: (row.lease_expires_at or 0.0, row.id))
        out: list[Job] = []
        for row in ended[: params.limit]:
            again = row.attempts < row.max_attempts
            self._move(row, JobState.QUEUED if again else JobState.FAILED)
            row.error = lease_expired_error(row.worker_id)
            row.finished_at = None if again else params.now
            row.lease_expires_at = None
            self._after_move(row)
            out.append(row.export())
        out.sort(key=lambda job: job.id)
        return out

    async def next_run_at(self) -> float | None:
        heap = self._scheduled
        while heap and not self._is_current_schedule(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    async def purge_finished(self, params: PurgeParams) -> int:
        if params.limit <= 0:
            return 0
        old = [
            row
            for row in self._jobs.values()
            if row.state in TERMINAL_STATES
            and row.finished_at is not None
            and row.finished_at < params.before
        ]
        old.sort(key=lambda row: (row.finished_at or 0.0, row.id))
        gone = {row.id for row in old[: params.limit]}
        if not gone:
            return 0
        tenants: set[str] = set()
        for job_id in gone:
            row = self._jobs.pop(job_id)
            tenants.add(row.tenant)
            self._counts[row.tenant][(row.queue, row.state)] -= 1
            if row.idempotency_key is not None:
                self._idempotency.pop((row.tenant, row.idempotency_key), None)
            self._logs.pop((row.tenant, row.id), None)
        for tenant in tenants:
            self._tenant_ids[tenant] = [i for i in self._tenant_ids[tenant] if i not in gone]
        # Stale queue entries may name a purged job: drop them so no lookup misses.
        self._ready = [e for e in self._ready if e[1] not in gone]
        heapq.heapify(self._ready)
        self._scheduled = [e for e in self._scheduled if e[1] not in gone]
        heapq.heapify(self._scheduled)
        return len(gone)

    # -- jobs: reads -----------------------------------------------------------------------

    async def get(self, tenant: str, job_id: str) -> Job | None:
        row = self._jobs.get(job_id)
        if row is None or row.tenant != tenant:
            return None
        return row.export()

    async def get_many(self, tenant: str, job_ids: Sequence[str]) -> list[Job]:
        rows = (self._jobs.get(job_id) for job_id in job_ids)
        return [row.export() for row in rows if row is not None and row.tenant == tenant]

    async def list_jobs(self, params: ListParams) -> JobPage:
        if params.limit <= 0:
            return JobPage([], next_cursor=None)
        ids = self._tenant_ids.get(params.tenant, [])
        if not self._tenant_ids_sorted.get(params.tenant, True):
            ids.sort()
            self._tenant_ids_sorted[params.tenant] = True
        end = len(ids) if params.cursor is None else bisect_left(ids, params.cursor)
        page: list[Job] = []
        for i in range(end - 1, -1, -1):
            row = self._jobs[ids[i]]
            if params.states is not None and row.state not in params.states:
                continue
            if params.queue is not None and row.queue != params.queue:
                continue
            if params.kind is not None and row.kind != params.kind:
                continue
            if params.parent_id is not None and row.parent_id != params.parent_id:
                continue
            if params.labels and not labels_match(params.labels, row.labels):
                continue
            if params.created_before is not None and row.created_at >= params.created_before:
                continue
            if params.created_after is not None and row.created_at < params.created_after:
                break  # ids are in creation order: every older job is older still
            if len(page) == params.limit:
                return JobPage(page, next_cursor=page[-1].id)
            page.append(row.export())
        return JobPage(page, next_cursor=None)

    async def stats(self, tenant: str) -> Stats:
        by_state = dict.fromkeys(_ALL_STATES, 0)
        by_queue: dict[str, dict[JobState, int]] = {}
        for (queue, state), n in self._counts.get(tenant, Counter()).items():
            if n:
                by_state[state] += n
                by_queue.setdefault(queue, dict.fromkeys(_ALL_STATES, 0))[state] += n
        return Stats(
            by_state={s.value: n for s, n in by_state.items()},
            by_queue={q: {s.value: n for s, n in c.items()} for q, c in sorted(by_queue.items())},
        )

    async def queue_depths(self) -> list[QueueDepth]:
        """Unfinished jobs per (queue, state), all tenants (``QueueDepthSource``, /metrics)."""
        found: dict[tuple[str, str], list[Any]] = {}
        for row in self._jobs.values():
            if row.state in TERMINAL_STATES:
                continue
            since = row.run_at if row.run_at is not None else row.created_at
            entry = found.setdefault((row.queue, row.state.value), [0, since])
            entry[0] += 1
            entry[1] = min(entry[1], since)
        return [QueueDepth(q, s, n, oldest) for (q, s), (n, oldest) in sorted(found.items())]

    # -- logs ------------------------------------------------------------------------------

    async def append_logs(self, chunks: Sequence[LogChunk]) -> None:
        for chunk in chunks:
            self._log_cursor += 1
            self._logs[(chunk.tenant, chunk.job_id)].append(StoredLogChunk(chunk, self._log_cursor))

    async def read_logs(self, params: ReadLogsParams) -> list[StoredLogChunk]:
        stored = self._logs.get((params.tenant, params.job_id), [])
        start = bisect_right(stored, params.after, key=lambda s: s.cursor)
        return stored[start : start + params.limit]

    # -- API keys --------------------------------------------------------------------------

    async def create_api_key(self, key: ApiKey) -> None:
        if key.id in self._keys:
            raise Conflict(f"API key {key.id} already exists")
        self._keys[key.id] = key

    async def find_api_keys(self, prefix: str) -> list[ApiKey]:
        return sorted((k for k in self._keys.values() if k.prefix == prefix), key=_key_order)

    async def list_api_keys(self, tenant: str) -> list[ApiKey]:
        return sorted((k for k in self._keys.values() if k.tenant == tenant), key=_key_order)

    async def revoke_api_key(self, tenant: str, key_id: str, now: float) -> ApiKey:
        key = self._keys.get(key_id)
        if key is None or key.tenant != tenant:
            raise NotFound(f"API key {key_id} not found")
        if key.revoked_at is None:
            key = self._keys[key_id] = replace(key, revoked_at=now)
        return key

    async def count_api_keys(self) -> int:
        return len(self._keys)

    # -- internals -------------------------------------------------------------------------

    def _insert(self, row: _Row) -> None:
        self._jobs[row.id] = row
        ids = self._tenant_ids[row.tenant]
        if ids and row.id < ids[-1]:
            self._tenant_ids_sorted[row.tenant] = False
        ids.append(row.id)
        self._counts[row.tenant][(row.queue, row.state)] += 1
        if row.state is JobState.RUNNING:  # submitted straight to a free local slot
            self._running.add(row.id)
            if row.concurrency_key is not None:
                self._running_by_key[(row.tenant, row.concurrency_key)] += 1
        self._after_move(row)

    def _move(self, row: _Row, state: JobState) -> None:
        """Change the row's state, keeping counts and running-job indexes right.

        Call :meth:`_after_move` once the other fields are set, so queue entries see them."""
        counts = self._counts[row.tenant]
        counts[(row.queue, row.state)] -= 1
        counts[(row.queue, state)] += 1
        if row.state is JobState.RUNNING:
            self._running.discard(row.id)
            if row.concurrency_key is not None:
                self._running_by_key[(row.tenant, row.concurrency_key)] -= 1
        if state is JobState.RUNNING:
            self._running.add(row.id)
            if row.concurrency_key is not None:
                self._running_by_key[(row.tenant, row.concurrency_key)] += 1
        row.state = state

    def _after_move(self, row: _Row) -> None:
        """Queue a row that is now queued or scheduled (stale entries are skipped later)."""
        if row.state is JobState.QUEUED:
            heapq.heappush(self._ready, (-row.priority, row.id))
        elif row.state is JobState.SCHEDULED and row.run_at is not None:
            heapq.heappush(self._scheduled, (row.run_at, row.id))

    def _promote_due(self, now: float) -> None:
        """Scheduled jobs whose time has come join the queue (as the SQL stores do in claim)."""
        heap = self._scheduled
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if self._is_current_schedule(entry):
                row = self._jobs[entry[1]]
                self._move(row, JobState.QUEUED)
                row.run_at = None
                self._after_move(row)

    def _is_current_schedule(self, entry: tuple[float, str]) -> bool:
        row = self._jobs[entry[1]]
        return row.state is JobState.SCHEDULED and row.run_at == entry[0]

    def _claimable(self, row: _Row, params: ClaimParams) -> bool:
        if params.kinds is not None and row.kind not in params.kinds:
            return False
        if params.queues is not None and row.queue not in params.queues:
            return False
        if row.labels and not labels_match(row.labels, params.worker_labels):
            return False
        if row.concurrency_key is not None:
            running = self._running_by_key[(row.tenant, row.concurrency_key)]
            return running < row.concurrency_limit
        return True

    def _owned(self, tenant: str, job_id: str) -> _Row:
        row = self._jobs.get(job_id)
        if row is None or row.tenant != tenant:
            raise NotFound(f"job {job_id} not found")
        return row


def _encode(value: Any, what: str) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError as e:  # orjson.JSONEncodeError is a TypeError
        raise ValidationError(f"{what} is not JSON-serializable: {e}") from None


def _holds(row: _Row, attempt: int) -> bool:
    return row.state is JobState.RUNNING and row.attempts == attempt


def _key_order(key: ApiKey) -> tuple[float, str]:
    return (key.created_at, key.id)


def check_completion(completion: Completion) -> None:
    """Refuse an outcome a running job cannot have (a programming error of the caller)."""
    if completion.state not in TRANSITIONS[JobState.RUNNING]:
        raise ValidationError(f"a running job cannot complete as {completion.state.value}")
    if completion.state is JobState.SCHEDULED and completion.run_at is None:
        raise ValidationError("a completion that schedules a retry needs run_at")


def lease_expired_error(worker_id: str | None) -> str:
    return f"lease expired (worker {worker_id or 'unknown'} stopped heartbeating)"
