"""The WorkerStore port: the worker registry, worker tokens, and the claim of chosen jobs that
remote placement needs. Implemented next to each JobStore adapter and mixed into it, so one
store object serves both ports; the contract suite is ``tests/contract/test_workers.py``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from faena.domain.jobs import Job
from faena.domain.workers import WorkerInfo, WorkerToken


@dataclass(frozen=True, slots=True)
class ListWorkersParams:
    """Workers whose last heartbeat is at or after ``since`` (None: all recorded).

    ``tenant``: only the workers that tenant may see (:func:`~faena.domain.workers.visible_to`:
    the ones bound to it, and for the operator's tenant the shared ones too); None: every
    worker."""

    since: float | None = None
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class DisconnectParams:
    worker_ids: Sequence[str]
    now: float


@dataclass(frozen=True, slots=True)
class PruneWorkersParams:
    """Forget workers whose last heartbeat is older than ``before``."""

    before: float


@dataclass(frozen=True, slots=True)
class PeekParams:
    """Up to ``limit`` runnable jobs in claim order (priority descending, then id), without
    changing them: ``queued``, or ``scheduled`` with ``run_at <= now``; only ``kinds``, and
    only ``tenant``'s jobs when it is set (workers bound to a tenant; None: every tenant)."""

    now: float
    limit: int
    kinds: frozenset[str]
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimJobsParams:
    """Move the given jobs to ``running`` for ``worker_id`` if each is still runnable (and its
    concurrency key has room), exactly as :class:`~faena.ports.store.ClaimParams` would.
    With ``tenant`` set, a job of another tenant is skipped too: a worker bound to a tenant
    never gets another tenant's job, whatever placement chose."""

    worker_id: str
    job_ids: Sequence[str]
    lease_s: float
    now: float
    tenant: str | None = None


@runtime_checkable
class WorkerStore(Protocol):
    async def save_worker(self, worker: WorkerInfo) -> None:
        """Insert or replace the worker's record (register and heartbeat)."""

    async def list_workers(self, params: ListWorkersParams) -> list[WorkerInfo]:
        """By id."""

    async def disconnect_workers(self, params: DisconnectParams) -> None: ...

    async def prune_workers(self, params: PruneWorkersParams) -> int: ...

    async def peek_runnable(self, params: PeekParams) -> list[Job]: ...

    async def claim_jobs(self, params: ClaimJobsParams) -> list[Job]:
        """The jobs claimed, in claim order; the others are skipped silently."""

    async def create_worker_token(self, token: WorkerToken) -> None: ...

    async def get_worker_token(self, token_id: str) -> WorkerToken | None: ...

    async def find_worker_tokens(self, prefix: str) -> list[WorkerToken]: ...

    async def list_worker_tokens(self, tenant: str) -> list[WorkerToken]: ...

    async def revoke_worker_token(self, tenant: str, token_id: str, now: float) -> WorkerToken:
        """NotFound unless the token exists for ``tenant``; revoking twice keeps the first time."""


class WorkerChannel(Protocol):
    """The server's end of one connected worker's stream (the gRPC adapter implements it).
    Every method only queues the message: none blocks."""

    def assign(self, job: Job, mask: Sequence[str] = ()) -> None:
        """Send ``job`` (its payload with secrets resolved); ``mask``: the secret values the
        worker must mask in what it sends back."""

    def cancel(self, job_id: str, attempt: int, reason: str) -> None: ...

    def log_ack(self, job_id: str, attempt: int, seq: int) -> None:
        """The attempt's log chunks up to ``seq`` are taken: the worker may forget them."""

    def renew_credential(self, credential: str, expires_at: float) -> None: ...

    def close(self, reason: str, *, retry: bool) -> None:
        """Say why and end the stream; ``retry=False`` tells the worker not to reconnect."""
