"""The WorkerStore on SQLite: the worker registry, worker tokens, and claims of chosen jobs.

Mixed into :class:`~faena.adapters.sqlite.store.SqliteStore`: writes run on its writer thread
in ``BEGIN IMMEDIATE`` transactions, reads on its reader thread.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from faena.adapters.sqlite import queries
from faena.adapters.sqlite.connection import transaction
from faena.adapters.sqlite.rows import job_from_row
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

A = TypeVar("A")
T = TypeVar("T")

_WORKER_COLUMNS = (
    "id, kind, kinds, labels, slots, cpu_cores, memory_mb, version, host, server, started_at,"
    " last_heartbeat, cpu_percent, memory_percent, running, state, tenant"
)
SAVE_WORKER = f"INSERT OR REPLACE INTO workers ({_WORKER_COLUMNS}) VALUES ({', '.join('?' * 17)})"
LIST_WORKERS = f"SELECT {_WORKER_COLUMNS} FROM workers WHERE last_heartbeat >= ? ORDER BY id"
# The workers one tenant may see: bound to it; the shared ones (tenant NULL) for the operator.
LIST_TENANT_WORKERS = f"""
SELECT {_WORKER_COLUMNS} FROM workers
WHERE last_heartbeat >= :since AND (tenant = :tenant OR (tenant IS NULL AND :tenant = 'default'))
ORDER BY id"""
DISCONNECT_WORKER = "UPDATE workers SET state = 'disconnected', running = 0 WHERE id = ?"
PRUNE_WORKERS = "DELETE FROM workers WHERE last_heartbeat < ?"

_TOKEN_COLUMNS = "id, tenant, name, prefix, token_hash, created_at, revoked_at, shared"
CREATE_TOKEN = f"INSERT INTO worker_tokens ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
GET_TOKEN = f"SELECT {_TOKEN_COLUMNS} FROM worker_tokens WHERE id = ?"
FIND_TOKENS = f"SELECT {_TOKEN_COLUMNS} FROM worker_tokens WHERE prefix = ? ORDER BY created_at, id"
LIST_TOKENS = f"SELECT {_TOKEN_COLUMNS} FROM worker_tokens WHERE tenant = ? ORDER BY created_at, id"
REVOKE_TOKEN = (
    "UPDATE worker_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ? AND tenant = ?"
)

# Runnable jobs of some kinds (and, for a worker bound to a tenant, of that tenant: the
# ``{tenant}`` slot) in claim order, from the two partial indexes.
_PEEK_QUEUED = """
SELECT {columns} FROM jobs
WHERE state = 'queued' AND kind IN ({kinds}){tenant}
ORDER BY priority DESC, id LIMIT ?"""
_PEEK_DUE = """
SELECT {columns} FROM jobs
WHERE state = 'scheduled' AND run_at <= ? AND kind IN ({kinds}){tenant}
ORDER BY run_at LIMIT ?"""
_CANDIDATES = """
SELECT j.id, j.tenant, j.concurrency_key, j.concurrency_limit,
  CASE WHEN j.concurrency_key IS NULL THEN 0 ELSE
    (SELECT count(*) FROM jobs AS r WHERE r.state = 'running' AND r.tenant = j.tenant
     AND r.concurrency_key = j.concurrency_key) END
FROM jobs AS j WHERE j.id IN (SELECT value FROM json_each(?)) AND j.state = 'queued'
ORDER BY j.priority DESC, j.id"""


def _worker_row(w: WorkerInfo) -> tuple[Any, ...]:
    return (
        w.id,
        w.kind.value,
        orjson.dumps(sorted(w.kinds)).decode(),
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


def _worker(r: tuple[Any, ...]) -> WorkerInfo:
    return WorkerInfo(
        id=r[0],
        kind=WorkerKind(r[1]),
        kinds=frozenset(orjson.loads(r[2])),
        labels=orjson.loads(r[3]),
        capacity=Capacity(slots=r[4], cpu_cores=float(r[5]), memory_mb=r[6]),
        version=r[7],
        host=r[8],
        server=r[9],
        started_at=float(r[10]),
        last_heartbeat=float(r[11]),
        load=Load(cpu_percent=float(r[12]), memory_percent=float(r[13]), running=r[14]),
        state=WorkerState(r[15]),
        tenant=r[16],
    )


def _token(r: tuple[Any, ...]) -> WorkerToken:
    return WorkerToken(
        id=r[0],
        tenant=r[1],
        name=r[2],
        prefix=r[3],
        token_hash=r[4],
        created_at=float(r[5]),
        revoked_at=None if r[6] is None else float(r[6]),
        shared=bool(r[7]),
    )


# -- operations (run on the store's threads) ---------------------------------------------------


def save_worker(conn: sqlite3.Connection, worker: WorkerInfo) -> None:
    with transaction(conn):
        conn.execute(SAVE_WORKER, _worker_row(worker))


def list_workers(conn: sqlite3.Connection, params: ListWorkersParams) -> list[WorkerInfo]:
    since = float("-inf") if params.since is None else params.since
    if params.tenant is None:
        rows = conn.execute(LIST_WORKERS, (since,)).fetchall()
    else:
        rows = conn.execute(
            LIST_TENANT_WORKERS, {"since": since, "tenant": params.tenant}
        ).fetchall()
    return [_worker(r) for r in rows]


def disconnect_workers(conn: sqlite3.Connection, params: DisconnectParams) -> None:
    with transaction(conn):
        conn.executemany(DISCONNECT_WORKER, [(w,) for w in params.worker_ids])


def prune_workers(conn: sqlite3.Connection, params: PruneWorkersParams) -> int:
    with transaction(conn):
        return conn.execute(PRUNE_WORKERS, (params.before,)).rowcount


def peek_runnable(conn: sqlite3.Connection, params: PeekParams) -> list[Job]:
    kinds = sorted(params.kinds)
    marks = ", ".join("?" * len(kinds))
    cols = queries.JOB_COLUMNS
    tenant, tenants = ("", ()) if params.tenant is None else (" AND tenant = ?", (params.tenant,))
    queued = conn.execute(
        _PEEK_QUEUED.format(columns=cols, kinds=marks, tenant=tenant),
        (*kinds, *tenants, params.limit),
    ).fetchall()
    due = conn.execute(
        _PEEK_DUE.format(columns=cols, kinds=marks, tenant=tenant),
        (params.now, *kinds, *tenants, params.limit),
    ).fetchall()
    jobs = [job_from_row(r) for r in queued + due]
    jobs.sort(key=lambda j: (-j.priority, j.id))
    return jobs[: params.limit]


def claim_jobs(conn: sqlite3.Connection, params: ClaimJobsParams) -> list[Job]:
    ids = orjson.dumps(list(params.job_ids)).decode()
    with transaction(conn):
        conn.execute(queries.PROMOTE_DUE, {"now": params.now})
        chosen: list[str] = []
        taken: Counter[tuple[str, str]] = Counter()
        for job_id, tenant, key, limit, running in conn.execute(_CANDIDATES, (ids,)).fetchall():
            if params.tenant is not None and tenant != params.tenant:
                continue  # a worker bound to a tenant never runs another tenant's job
            if key is not None:
                if running + taken[(tenant, key)] >= limit:
                    continue
                taken[(tenant, key)] += 1
            chosen.append(job_id)
        if not chosen:
            return []
        rows = conn.execute(
            queries.CLAIM_BY_IDS,
            {
                "now": params.now,
                "worker_id": params.worker_id,
                "lease_expires_at": params.now + params.lease_s,
                "ids": orjson.dumps(chosen).decode(),
            },
        ).fetchall()
    jobs = [job_from_row(r) for r in rows]
    jobs.sort(key=lambda j: (-j.priority, j.id))
    return jobs


def create_worker_token(conn: sqlite3.Connection, token: WorkerToken) -> None:
    with transaction(conn):
        conn.execute(
            CREATE_TOKEN,
            (
                token.id,
                token.tenant,
                token.name,
                token.prefix,
                token.token_hash,
                token.created_at,
                token.revoked_at,
                int(token.shared),
            ),
        )


def select_tokens(conn: sqlite3.Connection, query: tuple[str, str]) -> list[WorkerToken]:
    sql, arg = query
    return [_token(r) for r in conn.execute(sql, (arg,)).fetchall()]


def revoke_worker_token(conn: sqlite3.Connection, args: tuple[str, str, float]) -> WorkerToken:
    tenant, token_id, now = args
    with transaction(conn):
        conn.execute(REVOKE_TOKEN, (now, token_id, tenant))
        row = conn.execute(GET_TOKEN, (token_id,)).fetchone()
    if row is None or row[1] != tenant:
        raise NotFound(f"worker token {token_id} not found")
    return _token(row)


class SqliteWorkers:
    """The :class:`~faena.ports.workers.WorkerStore` operations of the SQLite store."""

    async def _write(self, op: Callable[[sqlite3.Connection, A], T], arg: A) -> T:
        raise NotImplementedError  # provided by SqliteStore

    async def _read(self, op: Callable[[sqlite3.Connection, A], T], arg: A) -> T:
        raise NotImplementedError  # provided by SqliteStore

    async def save_worker(self, worker: WorkerInfo) -> None:
        await self._write(save_worker, worker)

    async def list_workers(self, params: ListWorkersParams) -> list[WorkerInfo]:
        return await self._read(list_workers, params)

    async def disconnect_workers(self, params: DisconnectParams) -> None:
        if params.worker_ids:
            await self._write(disconnect_workers, params)

    async def prune_workers(self, params: PruneWorkersParams) -> int:
        return await self._write(prune_workers, params)

    async def peek_runnable(self, params: PeekParams) -> list[Job]:
        if params.limit <= 0 or not params.kinds:
            return []
        return await self._read(peek_runnable, params)

    async def claim_jobs(self, params: ClaimJobsParams) -> list[Job]:
        if not params.job_ids:
            return []
        return await self._write(claim_jobs, params)

    async def create_worker_token(self, token: WorkerToken) -> None:
        await self._write(create_worker_token, token)

    async def get_worker_token(self, token_id: str) -> WorkerToken | None:
        found = await self._read(select_tokens, (GET_TOKEN, token_id))
        return found[0] if found else None

    async def find_worker_tokens(self, prefix: str) -> list[WorkerToken]:
        return await self._read(select_tokens, (FIND_TOKENS, prefix))

    async def list_worker_tokens(self, tenant: str) -> list[WorkerToken]:
        return await self._read(select_tokens, (LIST_TOKENS, tenant))

    async def revoke_worker_token(self, tenant: str, token_id: str, now: float) -> WorkerToken:
        return await self._write(revoke_worker_token, (tenant, token_id, now))
