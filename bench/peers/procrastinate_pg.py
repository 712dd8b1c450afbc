"""procrastinate on PostgreSQL (psycopg 3), workers run with the ``procrastinate worker`` CLI.

Configuration: ``--workers 2`` worker processes (one per core) each with
``--concurrency 10`` asynchronous jobs in flight (procrastinate runs async tasks
concurrently inside one worker; its default is 1), LISTEN/NOTIFY on (default), jobs kept
after completion (``delete_jobs=never``, the default), one psycopg pool per process sized
``concurrency + 2``. Bulk enqueue with ``Task.batch_defer_async``. Completion: no job
left in status ``todo`` or ``doing``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import procrastinate
from bench.peers._common import (
    Peer,
    dist_version,
    ensure_pg_database,
    main,
    pg_dsn,
    record,
    venv_script,
)

DATABASE = os.environ.get("BENCH_PROCRASTINATE_DB", "faena_bench_procrastinate")
QUEUE = "faena_bench"
_POOL_SIZE = int(os.environ.get("BENCH_PROCRASTINATE_POOL", "4"))

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(
        conninfo=pg_dsn(DATABASE), min_size=min(4, _POOL_SIZE), max_size=_POOL_SIZE
    )
)


@app.task(name="noop", queue=QUEUE)
async def noop(enqueued_at: float) -> None:
    record(enqueued_at)


class ProcrastinatePeer(Peer):
    system = "procrastinate-pg"
    default_workers = 2

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--concurrency", type=int, default=10)

    def version(self) -> str:
        return dist_version("procrastinate")

    def config(self, opts: argparse.Namespace) -> dict[str, Any]:
        return {
            "processes": opts.workers,
            "concurrency": opts.concurrency,
            "listen_notify": True,
            "delete_jobs": "never",
            "driver": "psycopg",
            "database": DATABASE,
        }

    def worker_env(self, opts: argparse.Namespace) -> dict[str, str]:
        return {"BENCH_PROCRASTINATE_POOL": str(opts.concurrency + 2)}

    def worker_commands(self, opts: argparse.Namespace) -> list[list[str]]:
        cmd = [
            venv_script("procrastinate"),
            "--app",
            "bench.peers.procrastinate_pg.app",
            "worker",
            "--queues",
            QUEUE,
            "--concurrency",
            str(opts.concurrency),
        ]
        return [[*cmd, "--name", f"bench{i}"] for i in range(opts.workers)]

    async def open(self, opts: argparse.Namespace) -> None:
        import psycopg

        await ensure_pg_database(DATABASE)
        await app.open_async()
        self.opened = True
        self.admin = await psycopg.AsyncConnection.connect(pg_dsn(DATABASE), autocommit=True)
        cur = await self.admin.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
        row = await cur.fetchone()
        if not (row and row[0]):
            await app.schema_manager.apply_schema_async()

    async def reset(self) -> None:
        await self.admin.execute(
            "TRUNCATE procrastinate_jobs, procrastinate_events, procrastinate_periodic_defers, "
            "procrastinate_workers RESTART IDENTITY CASCADE"
        )

    async def enqueue_bulk(self, n: int) -> None:
        chunk = 5_000
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
            await noop.batch_defer_async(*({"enqueued_at": 0} for _ in range(size)))

    async def after_enqueue(self) -> None:
        # Planner statistics as autovacuum would have them on a live system: right after
        # TRUNCATE the table looks empty and the fetch query plans a full scan per job.
        await self.admin.execute("ANALYZE procrastinate_jobs")

    async def enqueue_one(self, enqueued_at: float) -> None:
        await noop.defer_async(enqueued_at=enqueued_at)

    async def settled(self) -> bool:
        cur = await self.admin.execute(
            "SELECT EXISTS (SELECT 1 FROM procrastinate_jobs WHERE status IN ('todo', 'doing'))"
        )
        row = await cur.fetchone()
        return not (row and row[0])

    async def close(self) -> None:
        if getattr(self, "admin", None) is not None:
            await self.admin.close()
        if getattr(self, "opened", False):
            await app.close_async()


if __name__ == "__main__":
    sys.exit(main(ProcrastinatePeer()))
