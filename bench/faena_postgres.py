"""faena with its PostgreSQL store: the driver of ``bench.faena_embedded`` against
``FAENA_DATABASE_URL=postgresql://...`` (``faena up``: API, scheduler and local pool in one
process), on a database dropped and created anew before each run::

    python -m bench.faena_postgres throughput --jobs 20000
    python -m bench.faena_postgres latency --rate 200 --seconds 10

The server is ``BENCH_PG_DSN`` (default ``postgresql://postgres@127.0.0.1:5432``, shared with
the peers) and the database ``BENCH_FAENA_DB`` (default ``faena_bench_faena``). PostgreSQL runs
with its own durable defaults (fsync and synchronous_commit on).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from bench.faena_embedded import run
from bench.peers._common import PG_ADMIN_DB, pg_dsn

DATABASE = os.environ.get("BENCH_FAENA_DB", "faena_bench_faena")


async def recreate_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_dsn(PG_ADMIN_DB))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def prepare(opts: argparse.Namespace) -> str:
    asyncio.run(recreate_database(DATABASE))
    return pg_dsn(DATABASE)


if __name__ == "__main__":
    sys.exit(run("faena-postgres", prepare=prepare))
