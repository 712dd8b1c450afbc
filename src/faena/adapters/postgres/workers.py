"""The WorkerStore on PostgreSQL, mixed into :class:`~faena.adapters.postgres.store.PostgresStore`.

``claim_jobs`` locks the chosen rows with ``FOR UPDATE SKIP LOCKED`` and honours concurrency
keys with the same try-locked advisory locks as ``claim``, so local pools and remote placement
claiming on several servers never exceed a key's limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import orjson

from faena.adapters.postgres import queries as q
from faena.adapters.postgres.rows import row_to_job
from faena.domain.errors import NotFound
from faena.domain.jobs import Job
from faena.domain.workers import (
    Capacity,
    Load,
    WorkerInfo,
    WorkerKind,
    WorkerState,
    WorkerToken,
)
from faena.ports.workers import (
    ClaimJobsParams,
    DisconnectParams,
    ListWorkersParams,
    PeekParams,
    PruneWorkersParams,
)

_WORKER_COLUMNS = (
    "id, kind, kinds, labels, slots, cpu_cores, memory_mb, version, host, server, started_at,"
    " last_heartbeat, cpu_percent, memory_percent, running, state, tenant"
)
SAVE_WORKER = f"""
INSERT INTO workers ({_WORKER_COLUMNS})
VALUES ($1, $2, $3, $4::text::jsonb, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
ON CONFLICT (id) DO UPDATE SET
    kind = EXCLUDED.kind, kinds = EXCLUDED.kinds, labels = EXCLUDED.labels,
    slots = EXCLUDED.slots, cpu_cores = EXCLUDED.cpu_cores, memory_mb = EXCLUDED.memory_mb,
    version = EXCLUDED.version, host = EXCLUDED.host, server = EXCLUDED.server,
    started_at = EXCLUDED.started_at, last_heartbeat = EXCLUDED.last_heartbeat,
    cpu_percent = EXCLUDED.cpu_percent, memory_percent = EXCLUDED.memory_percent,
    running = EXCLUDED.running, state = EXCLUDED.state, tenant = EXCLUDED.tenant"""
LIST_WORKERS = f"""
SELECT {_WORKER_COLUMNS} FROM workers
WHERE ($1::float8 IS NULL OR last_heartbeat >= $1)
  AND ($2::text IS NULL OR tenant = $2 OR (tenant IS NULL AND $2 = 'default'))
ORDER BY id"""
DISCONNECT_WORKERS = """
UPDATE workers SET state = 'disconnected', running = 0 WHERE id = ANY($1::text[])"""
PRUNE_WORKERS = "DELETE FROM workers WHERE last_heartbeat < $1"

_TOKEN_COLUMNS = "id, tenant, name, prefix, token_hash, created_at, revoked_at, shared"
CREATE_TOKEN = (
    f"INSERT INTO worker_tokens ({_TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
)
GET_TOKEN = f"SELECT {_TOKEN_COLUMNS} FROM worker_tokens WHERE id = $1"
FIND_TOKENS = (
    f"SELECT {_TOKEN_COLUMNS} FROM worker_tokens WHERE prefix = $1 ORDER BY created_at, id"
)
LIST_TOKENS = (
    f"SELECT {_TOKEN_COLUMNS} FROM worker_tokens WHERE tenant = $1 ORDER BY created_at, id"
)
REVOKE_TOKEN = f"""
UPDATE worker_tokens SET revoked_at = coalesce(revoked_at, $3)
WHERE id = $1 AND tenant = $2 RETURNING {_TOKEN_COLUMNS}"""

PEEK_RUNNABLE = f"""
(SELECT {q.JOB_COLUMNS} FROM jobs
 WHERE state = 'queued' AND kind = ANY($2::text[])
 ORDER BY priority DESC, id LIMIT $3)
UNION ALL
(SELECT {q.JOB_COLUMNS} FROM jobs
 WHERE state = 'scheduled' AND run_at <= $1 AND kind = ANY($2::text[])
 ORDER BY run_at LIMIT $3)"""
# The same for a worker bound to one tenant ($4), from the tenant's queue index.
PEEK_TENANT_RUNNABLE = f"""
(SELECT {q.JOB_COLUMNS} FROM jobs
 WHERE state = 'queued' AND tenant = $4 AND kind = ANY($2::text[])
 ORDER BY tenant, priority DESC, id LIMIT $3)
UNION ALL
(SELECT {q.JOB_COLUMNS} FROM jobs
 WHERE state = 'scheduled' AND run_at <= $1 AND tenant = $4 AND kind = ANY($2::text[])
 ORDER BY run_at LIMIT $3)"""
# Jobs of another tenant than $2 (when set) are never locked for a worker bound to $2.
LOCK_CHOSEN = """
SELECT id, tenant, concurrency_key, concurrency_limit, ctid FROM jobs
WHERE id = ANY($1::text[]) AND state = 'queued' AND ($2::text IS NULL OR tenant = $2)
ORDER BY priority DESC, id
FOR UPDATE SKIP LOCKED"""


def _worker(r: Sequence[Any]) -> WorkerInfo:
    return WorkerInfo(
        id=r[0],
        kind=WorkerKind(r[1]),
        kinds=frozenset(r[2]),
        labels=dict(r[3]),
        capacity=Capacity(slots=r[4], cpu_cores=r[5], memory_mb=r[6]),
        version=r[7],
        host=r[8],
        server=r[9],
        started_at=r[10],
        last_heartbeat=r[11],
        load=Load(cpu_percent=r[12], memory_percent=r[13], running=r[14]),
        state=WorkerState(r[15]),
        tenant=r[16],
    )


def _token(r: Sequence[Any]) -> WorkerToken:
    return WorkerToken(
        id=r[0],
        tenant=r[1],
        name=r[2],
        prefix=r[3],
        token_hash=r[4],
        created_at=r[5],
        revoked_at=r[6],
        shared=bool(r[7]),
    )


class PostgresWorkers:
    """The :class:`~faena.ports.workers.WorkerStore` operations of the PostgreSQL store."""

    def _connection(self, doing: str) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # provided by PostgresStore

    def _tenant_connection(self, tenant: str, doing: str) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # provided by PostgresStore (row-level security)

    async def save_worker(self, worker: WorkerInfo) -> None:
        w = worker
        async with self._connection("saving a worker") as conn:
            await conn.execute(
                SAVE_WORKER,
                w.id,
                w.kind.value,
                sorted(w.kinds),
                orjson.dumps(w.labels).decode(),
                w.capacity.slots,
                w.capacity.cpu_cores,
                w.capacity.memory_mb,
                w.version,
                w.host,
                w.server,
                w.started_at,
                w.last_heartbeat,
                w.load.cpu_percent,
                w.load.memory_percent,
                w.load.running,
                w.state.value,
                w.tenant,
            )

    async def list_workers(self, params: ListWorkersParams) -> list[WorkerInfo]:
        if params.tenant is None:  # placement, the registry: every tenant's, as the owner
            async with self._connection("listing workers") as conn:
                rows = await conn.fetch(LIST_WORKERS, params.since, None)
        else:  # a tenant's listing (GET /v1/workers), under row-level security
            async with self._tenant_connection(params.tenant, "listing workers") as conn:
                rows = await conn.fetch(LIST_WORKERS, params.since, params.tenant)
        return [_worker(r) for r in rows]

    async def disconnect_workers(self, params: DisconnectParams) -> None:
        if not params.worker_ids:
            return
        async with self._connection("disconnecting workers") as conn:
            await conn.execute(DISCONNECT_WORKERS, list(params.worker_ids))

    async def prune_workers(self, params: PruneWorkersParams) -> int:
        async with self._connection("pruning workers") as conn:
            status: str = await conn.execute(PRUNE_WORKERS, params.before)
        return int(status.rsplit(" ", 1)[-1])

    async def peek_runnable(self, params: PeekParams) -> list[Job]:
        if params.limit <= 0 or not params.kinds:
            return []
        kinds = sorted(params.kinds)
        async with self._connection("reading runnable jobs") as conn:
            if params.tenant is None:
                rows = await conn.fetch(PEEK_RUNNABLE, params.now, kinds, params.limit)
            else:
                rows = await conn.fetch(
                    PEEK_TENANT_RUNNABLE, params.now, kinds, params.limit, params.tenant
                )
        jobs = [row_to_job(r) for r in rows]
        jobs.sort(key=lambda j: (-j.priority, j.id))
        return jobs[: params.limit]

    async def claim_jobs(self, params: ClaimJobsParams) -> list[Job]:
        if not params.job_ids:
            return []
        async with self._connection("claiming jobs") as conn, conn.transaction():
            await conn.execute(q.PROMOTE_DUE, params.now, len(params.job_ids))
            rows = await conn.fetch(LOCK_CHOSEN, list(dict.fromkeys(params.job_ids)), params.tenant)
            keys = sorted({(r[1], r[2]) for r in rows if r[2] is not None})
            running: dict[tuple[str, str], int] = {}
            if keys:
                tenants, names = [t for t, _ in keys], [k for _, k in keys]
                locked = [
                    (t, k)
                    for t, k, ok in await conn.fetch(q.TRY_LOCK_CONCURRENCY_KEYS, tenants, names)
                    if ok
                ]
                running = dict.fromkeys(locked, 0)
                if locked:
                    counts = await conn.fetch(
                        q.COUNT_RUNNING_BY_KEY, [t for t, _ in locked], [k for _, k in locked]
                    )
                    running.update({(t, k): n for t, k, n in counts})
            chosen = []
            for _, tenant, key, limit, ctid in rows:
                if key is not None:
                    count = running.get((tenant, key))
                    if count is None or count >= limit:
                        continue  # saturated, or another claimer is placing that key now
                    running[(tenant, key)] = count + 1
                chosen.append(ctid)
            if not chosen:
                return []
            claimed = await conn.fetch(
                q.CLAIM_JOBS, chosen, params.worker_id, params.now, params.lease_s
            )
        return [row_to_job(r) for r in claimed]

    async def create_worker_token(self, token: WorkerToken) -> None:
        async with self._tenant_connection(token.tenant, "creating a worker token") as conn:
            await conn.execute(
                CREATE_TOKEN,
                token.id,
                token.tenant,
                token.name,
                token.prefix,
                token.token_hash,
                token.created_at,
                token.revoked_at,
                token.shared,
            )

    async def get_worker_token(self, token_id: str) -> WorkerToken | None:
        async with self._connection("reading a worker token") as conn:
            row = await conn.fetchrow(GET_TOKEN, token_id)
        return None if row is None else _token(row)

    async def find_worker_tokens(self, prefix: str) -> list[WorkerToken]:
        async with self._connection("finding worker tokens") as conn:
            rows = await conn.fetch(FIND_TOKENS, prefix)
        return [_token(r) for r in rows]

    async def list_worker_tokens(self, tenant: str) -> list[WorkerToken]:
        async with self._tenant_connection(tenant, "listing worker tokens") as conn:
            rows = await conn.fetch(LIST_TOKENS, tenant)
        return [_token(r) for r in rows]

    async def revoke_worker_token(self, tenant: str, token_id: str, now: float) -> WorkerToken:
        async with self._tenant_connection(tenant, "revoking a worker token") as conn:
            row = await conn.fetchrow(REVOKE_TOKEN, token_id, tenant, now)
        if row is None:
            raise NotFound(f"worker token {token_id} not found")
        return _token(row)


__all__ = ["PostgresWorkers"]
