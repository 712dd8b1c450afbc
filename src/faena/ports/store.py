"""The Store port: every durable operation of faena, named after what it does.

Each operation takes one frozen params dataclass, so fields can be added without breaking
adapters. Every state change is a compare-and-swap: the adapter applies it only when the row is
still as the caller saw it (state, and the attempt for a running job), inside one transaction.
All adapters pass the same contract suite (``tests/contract``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from faena.domain.auth import ApiKey
from faena.domain.jobs import Job, JobSpec, JobState
from faena.domain.logs import LogChunk
from faena.ports.bus import ChangeFeed


@dataclass(frozen=True, slots=True)
class StartNow:
    """Jobs of a submit that a local worker with free slots takes at once: the store writes
    them already claimed (``running``, attempt 1, ``worker_id``, ``started_at = now``,
    ``lease_expires_at = now + lease_s``) in the submit's own transaction, as if a claim had
    followed it, saving the claim's round trip and commit. Only jobs it creates are started
    (an idempotent submit that returns an earlier job leaves that job as it is)."""

    worker_id: str
    lease_s: float
    ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class SubmitParams:
    """Store new jobs in one transaction. ``ids[i]`` is the id for ``specs[i]``; the jobs
    whose ids ``start`` names are stored claimed by its worker (see :class:`StartNow`)."""

    specs: Sequence[JobSpec]
    ids: Sequence[str]
    now: float
    start: StartNow | None = None

    def new_job(self, job_id: str, spec: JobSpec) -> Job:
        """The job a store writes for ``spec``: as submitted, or started by ``start``."""
        job = Job.from_spec(job_id, spec, self.now)
        start = self.start
        if start is not None and job_id in start.ids:
            return job.started(start.worker_id, self.now, start.lease_s)
        return job


@dataclass(frozen=True, slots=True)
class Submitted:
    job: Job
    created: bool  # False: an earlier job with the same (tenant, idempotency_key) was returned


@dataclass(frozen=True, slots=True)
class ClaimParams:
    """Move up to ``limit`` runnable jobs to ``running`` for ``worker_id``.

    Runnable: ``queued``, or ``scheduled`` with ``run_at <= now``. Order: priority descending,
    then creation (id) ascending. Only jobs whose kind is in ``kinds`` (None: any), whose queue
    is in ``queues`` (None: any), whose required labels ``worker_labels`` satisfy, and whose
    concurrency key has fewer than ``concurrency_limit`` running jobs. Each claimed job gets
    ``attempts + 1``, ``started_at = now``, ``lease_expires_at = now + lease_s``.
    """

    worker_id: str
    limit: int
    lease_s: float
    now: float
    kinds: frozenset[str] | None = None
    queues: frozenset[str] | None = None
    worker_labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LeaseRef:
    """A running job as its worker knows it: the attempt is the fencing token."""

    job_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class ExtendLeasesParams:
    worker_id: str
    leases: Sequence[LeaseRef]
    lease_s: float
    now: float


@dataclass(frozen=True, slots=True)
class Completion:
    """The outcome of one attempt: the new state (succeeded, failed, or scheduled/queued for a
    retry) with its result or error. Applied only if the job is still running that attempt."""

    job_id: str
    attempt: int
    state: JobState
    result: Any = None
    error: str | None = None
    run_at: float | None = None


@dataclass(frozen=True, slots=True)
class CompleteParams:
    completions: Sequence[Completion]
    now: float


@dataclass(frozen=True, slots=True)
class CancelParams:
    tenant: str
    job_id: str
    now: float


@dataclass(frozen=True, slots=True)
class RetryParams:
    """Put a failed or cancelled job back in the queue with a fresh count of attempts."""

    tenant: str
    job_id: str
    now: float


@dataclass(frozen=True, slots=True)
class ExpireLeasesParams:
    """Running jobs whose lease ended before ``now`` go back to ``queued`` when attempts are
    left, else to ``failed``; both with an error saying the lease expired."""

    now: float
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class PurgeParams:
    """Delete up to ``limit`` finished jobs (succeeded, failed or cancelled) whose
    ``finished_at`` is before ``before``, oldest first, with their log chunks."""

    before: float
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class ListParams:
    """Newest first. ``cursor`` is the id of the last job of the previous page. ``labels``:
    jobs carrying every one of these labels; ``created_after`` (inclusive) and
    ``created_before`` (exclusive) bound ``created_at``; ``parent_id``: the children of that
    job (an agent's tool calls)."""

    tenant: str
    states: frozenset[JobState] | None = None
    queue: str | None = None
    kind: str | None = None
    limit: int = 50
    cursor: str | None = None
    labels: dict[str, str] | None = None
    created_after: float | None = None
    created_before: float | None = None
    parent_id: str | None = None


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ReadLogsParams:
    """Chunks of one job in order, after position ``after`` (the ``cursor`` of a chunk)."""

    tenant: str
    job_id: str
    after: int = 0
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class StoredLogChunk:
    chunk: LogChunk
    cursor: int  # store-assigned, strictly increasing per job: resume a follow from here


@dataclass(frozen=True, slots=True)
class Stats:
    by_state: dict[str, int]
    by_queue: dict[str, dict[str, int]]


class JobStore(Protocol):
    """Durable jobs, logs and API keys. One adapter per backend; all pass the contract suite."""

    supports_notify: bool  # the backend can wake other processes (LISTEN/NOTIFY)

    async def open(self) -> None:
        """Connect and apply pending migrations. Raises SchemaError if the schema is newer."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise Unavailable unless the store answers."""

    async def schema_version(self) -> int: ...

    async def submit_many(self, params: SubmitParams) -> list[Submitted]: ...

    async def claim(self, params: ClaimParams) -> list[Job]: ...

    async def extend_leases(self, params: ExtendLeasesParams) -> list[str]:
        """Extend the leases still held (running, same attempt); return their job ids."""

    async def complete_many(self, params: CompleteParams) -> list[Job]:
        """Apply each completion whose job is still running that attempt; return the jobs as
        they are now, for the completions that applied (the others are silently dropped)."""

    async def cancel(self, params: CancelParams) -> Job:
        """Queued, scheduled or running → cancelled. NotFound; Conflict when terminal."""

    async def retry(self, params: RetryParams) -> Job:
        """Failed or cancelled → queued, attempts reset. NotFound; Conflict otherwise."""

    async def expire_leases(self, params: ExpireLeasesParams) -> list[Job]: ...

    async def next_run_at(self) -> float | None:
        """The earliest ``run_at`` among scheduled jobs, if any."""

    async def purge_finished(self, params: PurgeParams) -> int:
        """Delete finished jobs and their logs (retention); return how many jobs went."""

    async def get(self, tenant: str, job_id: str) -> Job | None: ...

    async def get_many(self, tenant: str, job_ids: Sequence[str]) -> list[Job]:
        """The jobs of ``tenant`` among ``job_ids``, in no particular order, missing ones left
        out: one read where the workflow engine would otherwise call ``get`` per step job."""

    async def list_jobs(self, params: ListParams) -> JobPage: ...

    async def append_logs(self, chunks: Sequence[LogChunk]) -> None: ...

    async def read_logs(self, params: ReadLogsParams) -> list[StoredLogChunk]: ...

    async def stats(self, tenant: str) -> Stats: ...

    async def create_api_key(self, key: ApiKey) -> None: ...

    async def find_api_keys(self, prefix: str) -> list[ApiKey]:
        """Keys whose visible prefix is ``prefix`` (the caller compares hashes in constant time)."""

    async def list_api_keys(self, tenant: str) -> list[ApiKey]: ...

    async def revoke_api_key(self, tenant: str, key_id: str, now: float) -> ApiKey: ...

    async def count_api_keys(self) -> int: ...


@runtime_checkable
class NotifyingStore(Protocol):
    """What a store whose ``supports_notify`` is true offers besides ``JobStore``: a feed of the
    changes other servers commit (PostgreSQL: LISTEN/NOTIFY, announced by the store in the same
    transaction as each change)."""

    def change_feed(self) -> ChangeFeed:
        """A new, unstarted feed; the composition root starts and stops it."""
