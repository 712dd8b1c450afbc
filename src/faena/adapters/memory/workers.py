"""The WorkerStore in memory, mixed into :class:`~faena.adapters.memory.store.MemoryStore`."""

from __future__ import annotations

import heapq
from dataclasses import replace
from typing import TYPE_CHECKING

from faena.domain.errors import Conflict, NotFound
from faena.domain.jobs import Job, JobState
from faena.domain.workers import WorkerInfo, WorkerState, WorkerToken, visible_to
from faena.ports.workers import (
    ClaimJobsParams,
    DisconnectParams,
    ListWorkersParams,
    PeekParams,
    PruneWorkersParams,
)

if TYPE_CHECKING:
    from faena.adapters.memory.store import MemoryStore


class MemoryWorkers:
    """The :class:`~faena.ports.workers.WorkerStore` operations of the in-memory store."""

    def _workers_state(self) -> tuple[dict[str, WorkerInfo], dict[str, WorkerToken]]:
        state = self.__dict__.get("_worker_registry")
        if state is None:
            state = self.__dict__["_worker_registry"] = ({}, {})
        return state

    async def save_worker(self, worker: WorkerInfo) -> None:
        self._workers_state()[0][worker.id] = worker

    async def list_workers(self, params: ListWorkersParams) -> list[WorkerInfo]:
        workers = self._workers_state()[0]
        return [
            w
            for _, w in sorted(workers.items())
            if (params.since is None or w.last_heartbeat >= params.since)
            and (params.tenant is None or visible_to(w, params.tenant))
        ]

    async def disconnect_workers(self, params: DisconnectParams) -> None:
        workers = self._workers_state()[0]
        for worker_id in params.worker_ids:
            w = workers.get(worker_id)
            if w is not None:
                workers[worker_id] = w.evolve(
                    state=WorkerState.DISCONNECTED, load=replace(w.load, running=0)
                )

    async def prune_workers(self, params: PruneWorkersParams) -> int:
        workers = self._workers_state()[0]
        gone = [i for i, w in workers.items() if w.last_heartbeat < params.before]
        for worker_id in gone:
            del workers[worker_id]
        return len(gone)

    async def peek_runnable(self, params: PeekParams) -> list[Job]:
        store = self._store()
        if params.limit <= 0:
            return []
        found = [
            row
            for row in store._jobs.values()
            if row.kind in params.kinds
            and (params.tenant is None or row.tenant == params.tenant)
            and (
                row.state is JobState.QUEUED
                or (
                    row.state is JobState.SCHEDULED
                    and row.run_at is not None
                    and row.run_at <= params.now
                )
            )
        ]
        chosen = heapq.nsmallest(params.limit, found, key=lambda r: (-r.priority, r.id))
        return [row.export() for row in chosen]

    async def claim_jobs(self, params: ClaimJobsParams) -> list[Job]:
        store = self._store()
        store._promote_due(params.now)
        rows = [store._jobs[i] for i in dict.fromkeys(params.job_ids) if i in store._jobs]
        rows.sort(key=lambda r: (-r.priority, r.id))
        claimed: list[Job] = []
        for row in rows:
            if row.state is not JobState.QUEUED:
                continue
            if params.tenant is not None and row.tenant != params.tenant:
                continue
            if row.concurrency_key is not None:
                running = store._running_by_key[(row.tenant, row.concurrency_key)]
                if running >= row.concurrency_limit:
                    continue
            store._move(row, JobState.RUNNING)
            row.attempts += 1
            row.started_at = params.now
            row.worker_id = params.worker_id
            row.lease_expires_at = params.now + params.lease_s
            row.run_at = None
            claimed.append(row.export())
        return claimed

    async def create_worker_token(self, token: WorkerToken) -> None:
        tokens = self._workers_state()[1]
        if token.id in tokens:
            raise Conflict(f"worker token {token.id} already exists")
        tokens[token.id] = token

    async def get_worker_token(self, token_id: str) -> WorkerToken | None:
        return self._workers_state()[1].get(token_id)

    async def find_worker_tokens(self, prefix: str) -> list[WorkerToken]:
        tokens = self._workers_state()[1].values()
        return sorted((t for t in tokens if t.prefix == prefix), key=_order)

    async def list_worker_tokens(self, tenant: str) -> list[WorkerToken]:
        tokens = self._workers_state()[1].values()
        return sorted((t for t in tokens if t.tenant == tenant), key=_order)

    async def revoke_worker_token(self, tenant: str, token_id: str, now: float) -> WorkerToken:
        tokens = self._workers_state()[1]
        token = tokens.get(token_id)
        if token is None or token.tenant != tenant:
            raise NotFound(f"worker token {token_id} not found")
        if token.revoked_at is None:
            token = tokens[token_id] = replace(token, revoked_at=now)
        return token

    def _store(self) -> MemoryStore:
        return self  # type: ignore[return-value]


def _order(token: WorkerToken) -> tuple[float, str]:
    return (token.created_at, token.id)
