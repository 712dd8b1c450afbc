"""The JobStore on one SQLite file.

SQLite allows one writer at a time, so the store embraces it: every write runs on one
connection owned by one thread (a single-worker executor), in a ``BEGIN IMMEDIATE`` transaction,
and reads run on a second connection and thread. WAL lets the reader see the last commit while
the writer works. The hot path is batched: a submit is one ``executemany``, a claim is one
indexed ``UPDATE … WHERE id IN (…) RETURNING``, a batch of completions is one
``UPDATE … FROM json_each(…) RETURNING`` (the SQL is in ``queries``, the operations in
``operations``).

Driver errors never leave this class: they are turned into faena's errors on the thread that
met them (``connection.translate``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from faena.adapters.sqlite import operations, queries
from faena.adapters.sqlite.ai_cache import SqliteAiCache
from faena.adapters.sqlite.artefacts import SqliteArtefacts
from faena.adapters.sqlite.audit import SqliteAudit
from faena.adapters.sqlite.connection import SYNCHRONOUS_MODES, connect, translate, use_wal
from faena.adapters.sqlite.llm import SqliteLlm
from faena.adapters.sqlite.mail import SqliteMail
from faena.adapters.sqlite.migrate import migrate
from faena.adapters.sqlite.secrets import SqliteSecrets
from faena.adapters.sqlite.tenants import SqliteTenants
from faena.adapters.sqlite.workers import SqliteWorkers
from faena.adapters.sqlite.workflows import SqliteWorkflows
from faena.domain.auth import ApiKey
from faena.domain.errors import Unavailable
from faena.domain.jobs import Job
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

A = TypeVar("A")
T = TypeVar("T")


class SqliteStore(
    SqliteSecrets,
    SqliteTenants,
    SqliteAudit,
    SqliteLlm,
    SqliteAiCache,
    SqliteArtefacts,
    SqliteMail,
    SqliteWorkers,
    SqliteWorkflows,
):
    """A :class:`~faena.ports.store.JobStore` on the SQLite file at ``path`` (created if absent).

    ``synchronous`` is SQLite's durability setting: ``NORMAL`` (the default) may lose the last
    transactions on power loss but never corrupts the file in WAL mode; ``FULL`` syncs every
    commit. ``busy_timeout_ms`` is how long to wait for another process holding the file.
    """

    supports_notify = False

    def __init__(
        self, path: str | Path, *, synchronous: str = "NORMAL", busy_timeout_ms: int = 5000
    ) -> None:
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS_MODES)}")
        if busy_timeout_ms < 0:
            raise ValueError("busy_timeout_ms must not be negative")
        self.path = Path(path)
        self._synchronous = synchronous.upper()
        self._busy_timeout_ms = busy_timeout_ms
        self._writer: ThreadPoolExecutor | None = None
        self._reader: ThreadPoolExecutor | None = None
        # Each connection is used only on its own executor's thread.
        self._write_conn: sqlite3.Connection | None = None
        self._read_conn: sqlite3.Connection | None = None
        # Reads of one row by primary key run on the event loop's own thread: in WAL mode a
        # read never waits for the writer, and a lookup costs less than the hop to a thread.
        self._inline_conn: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the file and its folder if needed, switch to WAL, apply pending migrations."""
        if self._writer is not None:
            return
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="faena-sqlite-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="faena-sqlite-reader")
        try:
            await self._run(self._writer, _translated, self._open_writer)
            await self._run(self._reader, _translated, self._open_reader)
            self._inline_conn = _translated(self._open_inline)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        inline, self._inline_conn = self._inline_conn, None
        if inline is not None:
            inline.close()
        try:
            if reader is not None:
                await self._run(reader, self._close_reader)
        finally:
            if writer is not None:
                try:
                    await self._run(writer, self._close_writer)
                finally:
                    writer.shutdown(wait=True)
            if reader is not None:
                reader.shutdown(wait=True)

    async def ping(self) -> None:
        await self._read(operations.ping, None)

    async def schema_version(self) -> int:
        return await self._read(operations.schema_version, None)

    # -- jobs ------------------------------------------------------------------------------

    async def submit_many(self, params: SubmitParams) -> list[Submitted]:
        return await self._write(operations.submit_many, params)

    async def claim(self, params: ClaimParams) -> list[Job]:
        if params.limit <= 0:
            return []
        return await self._write(operations.claim, params)

    async def extend_leases(self, params: ExtendLeasesParams) -> list[str]:
        if not params.leases:
            return []
        return await self._write(operations.extend_leases, params)

    async def complete_many(self, params: CompleteParams) -> list[Job]:
        if not params.completions:
            return []
        return await self._write(operations.complete_many, params)

    async def cancel(self, params: CancelParams) -> Job:
        return await self._write(operations.cancel, params)

    async def retry(self, params: RetryParams) -> Job:
        return await self._write(operations.retry, params)

    async def expire_leases(self, params: ExpireLeasesParams) -> list[Job]:
        return await self._write(operations.expire_leases, params)

    async def next_run_at(self) -> float | None:
        return await self._read(operations.next_run_at, None)

    async def purge_finished(self, params: PurgeParams) -> int:
        return await self._write(operations.purge_finished, params)

    async def get(self, tenant: str, job_id: str) -> Job | None:
        conn = self._inline_conn
        if conn is not None:
            try:
                return operations.get(conn, (tenant, job_id))
            except sqlite3.OperationalError:  # busy (WAL recovery): wait on the reader thread
                pass
        return await self._read(operations.get, (tenant, job_id))

    async def get_many(self, tenant: str, job_ids: Sequence[str]) -> list[Job]:
        if not job_ids:
            return []
        key = (tenant, list(job_ids))
        conn = self._inline_conn
        if conn is not None:
            try:
                return operations.get_many(conn, key)
            except sqlite3.OperationalError:  # busy (WAL recovery): wait on the reader thread
                pass
        return await self._read(operations.get_many, key)

    async def list_jobs(self, params: ListParams) -> JobPage:
        return await self._read(operations.list_jobs, params)

    async def stats(self, tenant: str) -> Stats:
        return await self._read(operations.stats, tenant)

    async def queue_depths(self) -> list[QueueDepth]:
        """Unfinished jobs per (queue, state), all tenants (``QueueDepthSource``, /metrics)."""
        return await self._read(operations.queue_depths, None)

    # -- logs ------------------------------------------------------------------------------

    async def append_logs(self, chunks: Sequence[LogChunk]) -> None:
        if chunks:
            await self._write(operations.append_logs, chunks)

    async def read_logs(self, params: ReadLogsParams) -> list[StoredLogChunk]:
        return await self._read(operations.read_logs, params)

    # -- API keys --------------------------------------------------------------------------

    async def create_api_key(self, key: ApiKey) -> None:
        await self._write(operations.create_api_key, key)

    async def find_api_keys(self, prefix: str) -> list[ApiKey]:
        return await self._read(operations.select_api_keys, (queries.FIND_API_KEYS, prefix))

    async def list_api_keys(self, tenant: str) -> list[ApiKey]:
        return await self._read(operations.select_api_keys, (queries.LIST_API_KEYS, tenant))

    async def revoke_api_key(self, tenant: str, key_id: str, now: float) -> ApiKey:
        return await self._write(operations.revoke_api_key, (tenant, key_id, now))

    async def count_api_keys(self) -> int:
        return await self._read(operations.count_api_keys, None)

    # -- threads and connections -----------------------------------------------------------

    async def _write(self, op: Callable[[sqlite3.Connection, A], T], arg: A) -> T:
        return await self._run(self._writer, self._on_connection, op, arg, True)

    async def _read(self, op: Callable[[sqlite3.Connection, A], T], arg: A) -> T:
        return await self._run(self._reader, self._on_connection, op, arg, False)

    @staticmethod
    async def _run(executor: ThreadPoolExecutor | None, fn: Callable[..., T], *args: Any) -> T:
        if executor is None:
            raise Unavailable("the SQLite store is not open")
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    def _on_connection(self, op: Callable[[sqlite3.Connection, A], T], arg: A, writer: bool) -> T:
        """Run ``op`` on the thread's connection; driver errors become faena errors here."""
        conn = self._write_conn if writer else self._read_conn
        if conn is None:
            raise Unavailable("the SQLite store is not open")
        try:
            return op(conn, arg)
        except sqlite3.Error as e:
            raise translate(e) from e

    def _connect(self) -> sqlite3.Connection:
        return connect(
            self.path, synchronous=self._synchronous, busy_timeout_ms=self._busy_timeout_ms
        )

    def _open_writer(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise Unavailable(f"cannot create the folder of {self.path}: {e}") from e
        conn = self._connect()
        try:
            use_wal(conn, self.path)
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._write_conn = conn

    def _open_inline(self) -> sqlite3.Connection:
        conn = connect(self.path, synchronous=self._synchronous, busy_timeout_ms=0)
        conn.execute("PRAGMA query_only = ON")
        return conn

    def _open_reader(self) -> None:
        conn = self._connect()
        try:
            conn.execute("PRAGMA query_only = ON")
        except BaseException:
            conn.close()
            raise
        self._read_conn = conn

    def _close_writer(self) -> None:
        if self._write_conn is not None:
            self._write_conn.close()
            self._write_conn = None

    def _close_reader(self) -> None:
        if self._read_conn is not None:
            self._read_conn.close()
            self._read_conn = None


def _translated(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except sqlite3.Error as e:
        raise translate(e) from e
