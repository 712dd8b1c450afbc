"""pgqueuer on PostgreSQL (asyncpg driver), workers run as ``pgqueuer.run`` does for ``pgq run``.

Configuration: ``--workers`` ``pgq run`` processes (default 2, one per core), each one
asyncpg connection, ``--batch-size`` jobs per dequeue (default 10, pgqueuer's default and
the value its docs use), no concurrency cap, LISTEN/NOTIFY wake-ups, durable (logged)
tables. Completion: pgqueuer deletes a finished job from the ``pgqueuer`` table (moving
it to ``pgqueuer_log``) when its status buffer flushes, so "settled" is an empty table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

from bench.peers._common import (
    Peer,
    dist_version,
    ensure_pg_database,
    main,
    pg_dsn,
    record,
)

DATABASE = os.environ.get("BENCH_PGQUEUER_DB", "faena_bench_pgqueuer")
ENTRYPOINT = "noop"


@contextlib.asynccontextmanager
async def create_pgqueuer() -> AsyncIterator[Any]:
    """Factory for ``pgq run bench.peers.pgqueuer_pg:create_pgqueuer`` (worker side)."""
    import asyncpg
    from pgqueuer import PgQueuer
    from pgqueuer.models import Job

    conn = await asyncpg.connect(pg_dsn(DATABASE))
    pgq = PgQueuer.from_asyncpg_connection(conn)

    @pgq.entrypoint(ENTRYPOINT)
    async def noop(job: Job) -> None:
        record(float(job.payload or b"0"))

    try:
        yield pgq
    finally:
        await conn.close()


class PgqueuerPeer(Peer):
    system = "pgqueuer-pg"
    default_workers = 2

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--batch-size", type=int, default=10)

    def version(self) -> str:
        return dist_version("pgqueuer")

    def config(self, opts: argparse.Namespace) -> dict[str, Any]:
        return {
            "processes": opts.workers,
            "batch_size": opts.batch_size,
            "driver": "asyncpg",
            "database": DATABASE,
        }

    def worker_commands(self, opts: argparse.Namespace) -> list[list[str]]:
        # `pgq run` (pgqueuer 1.6.0 with typer 0.29) dies in its logging setup
        # ('str' object has no attribute 'name'), so the worker calls the same
        # supervisor (`pgqueuer.run`) on uvloop itself, exactly as the CLI would.
        cmd = [sys.executable, "-m", "bench.peers.pgqueuer_pg", "worker", str(opts.batch_size)]
        return [cmd] * opts.workers

    async def open(self, opts: argparse.Namespace) -> None:
        import asyncpg
        from pgqueuer import Queries

        await ensure_pg_database(DATABASE)
        self.conn = await asyncpg.connect(pg_dsn(DATABASE))
        self.queries = Queries.from_asyncpg_connection(self.conn)
        if not await self.queries.schema_is_installed():
            await self.queries.install()

    async def reset(self) -> None:
        tables = await self.conn.fetch(
            "SELECT quote_ident(tablename) AS t FROM pg_tables "
            "WHERE schemaname = current_schema() AND tablename LIKE 'pgqueuer%'"
        )
        await self.conn.execute(
            "TRUNCATE " + ", ".join(r["t"] for r in tables) + " RESTART IDENTITY"
        )

    async def enqueue_bulk(self, n: int) -> None:
        chunk = 5_000
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
            await self.queries.enqueue([ENTRYPOINT] * size, [b"0"] * size, [0] * size)

    async def after_enqueue(self) -> None:
        await self.conn.execute("ANALYZE pgqueuer")  # stats as autovacuum would keep them

    async def enqueue_one(self, enqueued_at: float) -> None:
        await self.queries.enqueue(ENTRYPOINT, b"%.7f" % enqueued_at)

    async def settled(self) -> bool:
        return not await self.conn.fetchval("SELECT EXISTS (SELECT 1 FROM pgqueuer)")

    async def close(self) -> None:
        if getattr(self, "conn", None) is not None:
            await self.conn.close()


def run_worker(batch_size: int) -> None:
    import pgqueuer

    try:
        import uvloop
    except ImportError:  # pragma: no cover - pgqueuer depends on uvloop on Linux
        asyncio.run(pgqueuer.run(create_pgqueuer, batch_size=batch_size))
    else:
        uvloop.run(pgqueuer.run(create_pgqueuer, batch_size=batch_size))


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        run_worker(int(sys.argv[2]))
    else:
        sys.exit(main(PgqueuerPeer()))
