"""The Store port on PostgreSQL (asyncpg): several servers, one database.

Hot path: a bulk submit is one ``INSERT ... SELECT FROM unnest(...)``; a claim locks candidates
with ``FOR UPDATE SKIP LOCKED`` on a partial index of queued jobs and moves them in one
``UPDATE``; completions and lease renewals are one statement per batch, each guarded by the
compare-and-swap ``state = 'running' AND attempts = <attempt>``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from faena.adapters.postgres import queries as q
from faena.adapters.postgres.ai_cache import PostgresAiCache
from faena.adapters.postgres.artefacts import PostgresArtefacts
from faena.adapters.postgres.audit import PostgresAudit
from faena.adapters.postgres.errors import server_address, translated
from faena.adapters.postgres.listener import PostgresChangeFeed
from faena.adapters.postgres.llm import PostgresLlm
from faena.adapters.postgres.mail import PostgresMail
from faena.adapters.postgres.migrate import migrate
from faena.adapters.postgres.rows import (
    init_connection,
    insert_jobs_args,
    json_text,
    row_to_api_key,
    row_to_job,
    row_to_log,
)
from faena.adapters.postgres.secrets import PostgresSecrets
from faena.adapters.postgres.tenancy import as_tenant
from faena.adapters.postgres.tenants import PostgresTenants
from faena.adapters.postgres.workers import PostgresWorkers
from faena.adapters.postgres.workflows import PostgresWorkflows
from faena.domain.auth import ApiKey
from faena.domain.errors import Conflict, NotFound, Unavailable, ValidationError
from faena.domain.jobs import TRANSITIONS, Job, JobState
from faena.domain.logs import LogChunk
from faena.ports.store import (
    CancelParams,
    ClaimParams,
    CompleteParams,
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

NOTIFY_CHANNEL = "faena_jobs"  # every change is NOTIFY'd here (migration 0003), per schema
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_PROMOTE_BATCH = 1000  # due scheduled jobs moved to queued per claim
_CLAIM_ROUNDS = 8  # extra candidate fetches when concurrency keys turn candidates away
_FEW_COMPLETIONS = 16  # batches up to this size complete by primary key (queries.COMPLETE_FEW_JOBS)
_COMPLETION_STATES = TRANSITIONS[JobState.RUNNING]
_STATE_NAMES = tuple(s.value for s in JobState)


class PostgresStore(
    PostgresSecrets,
    PostgresTenants,
    PostgresAudit,
    PostgresLlm,
    PostgresAiCache,
    PostgresArtefacts,
    PostgresMail,
    PostgresWorkers,
    PostgresWorkflows,
):
    """Durable jobs, logs and API keys in PostgreSQL. ``schema`` (optional) is the schema the
    tables live in: it is created if missing and set as ``search_path`` on every connection."""

    supports_notify = True

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        command_timeout: float = 30.0,
        schema: str | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise ValidationError(f"invalid PostgreSQL schema name: {schema!r}")
        self._dsn = dsn
        self._min_size = min_size
        self._max_size = max_size
        self._command_timeout = command_timeout
        self._connect_timeout = connect_timeout
        self._schema = schema
        self._address = server_address(dsn)
        self._pool: asyncpg.Pool | None = None
        # Who wrote a change, so a server's listener skips what its own services announced.
        self.origin = secrets.token_hex(6)
        self.channel = notify_channel(schema)

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            return
        settings = {
            "application_name": "faena",
            "jit": "off",
            "faena.origin": self.origin,  # read by the NOTIFY triggers (migration 0003)
            "faena.channel": self.channel,
        }
        if self._schema is not None:
            settings["search_path"] = self._schema
        with translated(self._address, "connecting"):
            pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                command_timeout=self._command_timeout,
                timeout=self._connect_timeout,
                server_settings=settings,
                init=init_connection,
                reset=_no_session_state,
            )
        try:
            with translated(self._address, "applying migrations"):
                async with pool.acquire() as conn:
                    await migrate(conn, self._schema)
                    await self.prepare_vectors(conn)  # pgvector if there (PostgresAiCache)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def change_feed(self) -> PostgresChangeFeed:
        """The changes other servers commit, heard on this deployment's NOTIFY channel."""
        return PostgresChangeFeed(
            self._dsn,
            channel=self.channel,
            origin=self.origin,
            connect_timeout=self._connect_timeout,
        )

    async def ping(self) -> None:
        async with self._connection("pinging") as conn:
            await conn.fetchval("SELECT 1")

    async def schema_version(self) -> int:
        async with self._connection("reading the schema version") as conn:
            version: int = await conn.fetchval(q.CURRENT_VERSION)
            return version

    @asynccontextmanager
    async def _connection(self, doing: str) -> AsyncIterator[Any]:
        if self._pool is None:
            raise Unavailable(f"the PostgreSQL store ({self._address}) is not open")
        with translated(self._address, doing):
            async with self._pool.acquire(timeout=self._command_timeout) as conn:
                yield conn

    @asynccontextmanager
    async def _tenant_connection(self, tenant: str, doing: str) -> AsyncIterator[Any]:
        """A connection in a transaction under row-level security for ``tenant`` (API reads
        and non-hot writes; see :mod:`faena.adapters.postgres.tenancy`)."""
        async with self._connection(doing) as conn, as_tenant(conn, tenant):
            yield conn

    # -- submit ----------------------------------------------------------------------------

    async def submit_many(self, params: SubmitParams) -> list[Submitted]:
        specs, ids, now = params.specs, params.ids, params.now
        if len(specs) != len(ids):
            raise ValidationError("submit needs exactly one id per job spec")
        jobs = [params.new_job(job_id, spec) for job_id, spec in zip(ids, specs, strict=True)]
        fresh, same_as = _first_of_each_key(jobs)
        if not fresh:
            return []
        args = insert_jobs_args(fresh, now)
        async with self._connection("submitting jobs") as conn:
            inserted = {r[0] for r in await conn.fetch(q.INSERT_JOBS, *args)}
            existing: dict[tuple[str, str], Job] = {}
            lost = [j for j in fresh if j.id not in inserted]
            if lost:
                tenants = [j.tenant for j in lost]
                keys = [j.idempotency_key for j in lost]
                for row in await conn.fetch(q.JOBS_BY_IDEMPOTENCY_KEY, tenants, keys):
                    job = row_to_job(row)
                    existing[(job.tenant, job.idempotency_key or "")] = job
        out: list[Submitted] = []
        for i, job in enumerate(jobs):
            if i in same_as:
                out.append(Submitted(out[same_as[i]].job, created=False))
            elif job.id in inserted:
                out.append(Submitted(job, created=True))
            else:
                found = existing.get((job.tenant, job.idempotency_key or ""))
                if found is None:  # the conflicting job vanished between the two statements
                    raise Conflict(f"job {job.id} conflicts with a job that no longer exists")
                out.append(Submitted(found, created=False))
        return out

    # -- claim -----------------------------------------------------------------------------

    async def claim(self, params: ClaimParams) -> list[Job]:
        if params.limit <= 0:
            return []
        kinds = sorted(params.kinds) if params.kinds is not None else None
        queues = sorted(params.queues) if params.queues is not None else None
        async with self._connection("claiming jobs") as conn:
            rows = await conn.fetch(
                q.CLAIM,
                params.limit,
                kinds,
                queues,
                params.worker_labels,
                params.worker_id,
                params.now,
                params.lease_s,
                _PROMOTE_BATCH,
                _CLAIM_ROUNDS,
            )
        return [row_to_job(r) for r in rows]

    # -- leases and completions ------------------------------------------------------------

    async def extend_leases(self, params: ExtendLeasesParams) -> list[str]:
        if not params.leases:
            return []
        ids = [lease.job_id for lease in params.leases]
        attempts = [lease.attempt for lease in params.leases]
        async with self._connection("extending leases") as conn:
            rows = await conn.fetch(
                q.EXTEND_LEASES, ids, attempts, params.worker_id, params.now, params.lease_s
            )
        held = {r[0] for r in rows}
        return [job_id for job_id in dict.fromkeys(ids) if job_id in held]

    async def complete_many(self, params: CompleteParams) -> list[Job]:
        if not params.completions:
            return []
        for c in params.completions:
            if c.state not in _COMPLETION_STATES:
                raise ValidationError(f"a running job cannot complete as {c.state.value}")
            if c.state is JobState.SCHEDULED and c.run_at is None:
                raise ValidationError("a completion that schedules a retry needs run_at")
        # A stable lock order: two batches touching the same rows cannot deadlock.
        completions = sorted(params.completions, key=lambda c: c.job_id)
        columns = (
            [c.job_id for c in completions],
            [c.attempt for c in completions],
            [c.state.value for c in completions],
            [json_text(c.result, "result") for c in completions],
            [c.error for c in completions],
            [c.run_at for c in completions],
        )
        async with self._connection("completing jobs") as conn:
            query = q.COMPLETE_FEW_JOBS if len(completions) <= _FEW_COMPLETIONS else q.COMPLETE_JOBS
            rows = await conn.fetch(query, *columns, params.now)
        by_id = {r[0]: row_to_job(r) for r in rows}
        order = dict.fromkeys(c.job_id for c in params.completions)
        return [by_id[job_id] for job_id in order if job_id in by_id]

    async def expire_leases(self, params: ExpireLeasesParams) -> list[Job]:
        async with self._connection("expiring leases") as conn:
            rows = await conn.fetch(q.EXPIRE_LEASES, params.now, params.limit)
        return [row_to_job(r) for r in rows]

    async def next_run_at(self) -> float | None:
        async with self._connection("reading the next run time") as conn:
            value: float | None = await conn.fetchval(q.NEXT_RUN_AT)
            return value

    async def purge_finished(self, params: PurgeParams) -> int:
        if params.limit <= 0:
            return 0
        async with self._connection("purging finished jobs") as conn:
            count: int = await conn.fetchval(q.PURGE_FINISHED, params.before, params.limit)
            return count

    # -- one job ---------------------------------------------------------------------------

    async def cancel(self, params: CancelParams) -> Job:
        async with self._tenant_connection(params.tenant, "cancelling a job") as conn:
            row = await conn.fetchrow(q.CANCEL_JOB, params.job_id, params.tenant, params.now)
            if row is not None:
                return row_to_job(row)
            state = await conn.fetchval(q.JOB_STATE, params.job_id, params.tenant)
        raise _missing_or_conflict(params.job_id, state, "cancelled")

    async def retry(self, params: RetryParams) -> Job:
        async with self._tenant_connection(params.tenant, "retrying a job") as conn:
            row = await conn.fetchrow(q.RETRY_JOB, params.job_id, params.tenant)
            if row is not None:
                return row_to_job(row)
            state = await conn.fetchval(q.JOB_STATE, params.job_id, params.tenant)
        raise _missing_or_conflict(params.job_id, state, "retried")

    async def get(self, tenant: str, job_id: str) -> Job | None:
        # The hottest read (a status poll) stays one round trip as the owner, scoped by its
        # WHERE tenant = $2: row-level security would add two (BEGIN+SET, COMMIT), about 3x its
        # latency (docs/security.md). Submit, claim and complete stay as the owner likewise.
        async with self._connection("reading a job") as conn:
            row = await conn.fetchrow(q.GET_JOB, job_id, tenant)
        return row_to_job(row) if row is not None else None

    async def get_many(self, tenant: str, job_ids: Sequence[str]) -> list[Job]:
        if not job_ids:
            return []
        async with self._tenant_connection(tenant, "reading jobs") as conn:
            rows = await conn.fetch(q.GET_JOBS, list(job_ids), tenant)
        return [row_to_job(row) for row in rows]

    async def list_jobs(self, params: ListParams) -> JobPage:
        states = sorted(s.value for s in params.states) if params.states is not None else None
        limit = max(params.limit, 0)
        async with self._tenant_connection(params.tenant, "listing jobs") as conn:
            rows = await conn.fetch(
                q.LIST_JOBS,
                params.tenant,
                states,
                params.queue,
                params.kind,
                params.cursor,
                limit + 1,
                params.labels or None,
                params.created_after,
                params.created_before,
                params.parent_id,
            )
        jobs = [row_to_job(r) for r in rows[:limit]]
        more = len(rows) > limit and bool(jobs)
        return JobPage(jobs=jobs, next_cursor=jobs[-1].id if more else None)

    async def stats(self, tenant: str) -> Stats:
        async with self._tenant_connection(tenant, "counting jobs") as conn:
            rows = await conn.fetch(q.STATS, tenant)
        by_state = dict.fromkeys(_STATE_NAMES, 0)
        by_queue: dict[str, dict[str, int]] = {}
        for queue, state, count in sorted(rows):
            by_state[state] += count
            by_queue.setdefault(queue, dict.fromkeys(_STATE_NAMES, 0))[state] = count
        return Stats(by_state=by_state, by_queue=by_queue)

    async def queue_depths(self) -> list[QueueDepth]:
        """Unfinished jobs per (queue, state), all tenants (``QueueDepthSource``, /metrics)."""
        async with self._connection("counting queues") as conn:
            rows = await conn.fetch(q.QUEUE_DEPTHS)
        return [QueueDepth(r[0], r[1], r[2], r[3]) for r in rows]

    # -- logs ------------------------------------------------------------------------------

    async def append_logs(self, chunks: Sequence[LogChunk]) -> None:
        if not chunks:
            return
        columns = (
            [c.job_id for c in chunks],
            [c.tenant for c in chunks],
            [c.seq for c in chunks],
            [c.stream.value for c in chunks],
            [c.data for c in chunks],
            [c.ts for c in chunks],
            [c.attempt for c in chunks],
        )
        async with self._connection("appending logs") as conn:
            await conn.execute(q.APPEND_LOGS, *columns)

    async def read_logs(self, params: ReadLogsParams) -> list[StoredLogChunk]:
        async with self._tenant_connection(params.tenant, "reading logs") as conn:
            rows = await conn.fetch(
                q.READ_LOGS, params.job_id, params.tenant, params.after, max(params.limit, 0)
            )
        return [row_to_log(r) for r in rows]

    # -- API keys --------------------------------------------------------------------------

    async def create_api_key(self, key: ApiKey) -> None:
        async with self._tenant_connection(key.tenant, "creating an API key") as conn:
            await conn.execute(
                q.CREATE_API_KEY,
                key.id,
                key.tenant,
                key.name,
                key.prefix,
                key.key_hash,
                list(key.scopes),
                key.created_at,
                key.expires_at,
                key.revoked_at,
                key.rate_limit,
                key.rate_limit_bulk,
                key.rate_limit_health,
            )

    async def find_api_keys(self, prefix: str) -> list[ApiKey]:
        async with self._connection("finding API keys") as conn:
            rows = await conn.fetch(q.FIND_API_KEYS, prefix)
        return [row_to_api_key(r) for r in rows]

    async def list_api_keys(self, tenant: str) -> list[ApiKey]:
        async with self._tenant_connection(tenant, "listing API keys") as conn:
            rows = await conn.fetch(q.LIST_API_KEYS, tenant)
        return [row_to_api_key(r) for r in rows]

    async def revoke_api_key(self, tenant: str, key_id: str, now: float) -> ApiKey:
        async with self._tenant_connection(tenant, "revoking an API key") as conn:
            row = await conn.fetchrow(q.REVOKE_API_KEY, key_id, tenant, now)
        if row is None:
            raise NotFound(f"API key {key_id} not found")
        return row_to_api_key(row)

    async def count_api_keys(self) -> int:
        async with self._connection("counting API keys") as conn:
            count: int = await conn.fetchval(q.COUNT_API_KEYS)
            return count


def notify_channel(schema: str | None) -> str:
    """The NOTIFY channel of a deployment: ``faena_jobs``, or one per schema (several faena
    deployments, or test runs, can share one database without hearing each other)."""
    if schema is None:
        return NOTIFY_CHANNEL
    channel = f"{NOTIFY_CHANNEL}_{schema}"
    if len(channel.encode()) > 63:  # NAMEDATALEN - 1
        channel = f"{NOTIFY_CHANNEL}_{hashlib.sha1(schema.encode()).hexdigest()[:24]}"
    return channel


async def _no_session_state(conn: Any) -> None:
    """Pool release hook. asyncpg still rolls back an open transaction first; the default
    reset (UNLISTEN, RESET ALL, advisory unlock: one more round trip per release) has nothing
    to undo: this store only uses ``SET LOCAL`` and transaction-level advisory locks."""


def _first_of_each_key(jobs: Sequence[Job]) -> tuple[list[Job], dict[int, int]]:
    """The jobs to insert, and for each later job repeating a batch's idempotency key, the
    index of the first one (which wins, as if the two had been submitted one after the other)."""
    first_with_key: dict[tuple[str, str], int] = {}
    same_as: dict[int, int] = {}
    fresh: list[Job] = []
    for i, job in enumerate(jobs):
        if job.idempotency_key is not None:
            key = (job.tenant, job.idempotency_key)
            if key in first_with_key:
                same_as[i] = first_with_key[key]
                continue
            first_with_key[key] = i
        fresh.append(job)
    return fresh, same_as


def _missing_or_conflict(job_id: str, state: str | None, verb: str) -> Exception:
    if state is None:
        return NotFound(f"job {job_id} not found")
    return Conflict(f"job {job_id} is {state}; it cannot be {verb}")
