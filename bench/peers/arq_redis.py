"""arq on Redis, workers run with ``arq.run_worker`` (what the ``arq`` CLI calls).

arq has no push wake-up: a worker polls the queue (a sorted set) every ``poll_delay``
(default 0.5 s) and sleeps that long after each batch it reads, which would cap both
throughput and latency at a poll period. The benchmark runs it at ``--poll-delay 0.005``
(documented worker setting), ``--max-jobs 10`` concurrent jobs per worker (arq's default),
``--workers 2`` processes (arq is single-process asyncio; one per core), results kept
(``keep_result`` default 3600 s) and not logged (``log_results=False``, logging at
WARNING: the ``arq`` CLI would log two INFO lines per job). No bulk enqueue API:
``enqueue_job`` calls are issued 50 at a time over one connection pool.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any, ClassVar

from arq.connections import RedisSettings
from bench.peers._common import REDIS_HOST, REDIS_PORT, Peer, dist_version, main, record

REDIS_URL = os.environ.get("BENCH_ARQ_REDIS_URL", f"redis://{REDIS_HOST}:{REDIS_PORT}/12")


async def noop(ctx: dict[str, Any], enqueued_at: float) -> None:
    record(enqueued_at)


class WorkerSettings:
    """``arq bench.peers.arq_redis.WorkerSettings`` would run the same worker."""

    functions: ClassVar[list[Any]] = [noop]
    redis_settings = RedisSettings.from_dsn(REDIS_URL)
    max_jobs = int(os.environ.get("BENCH_ARQ_MAX_JOBS", "10"))
    poll_delay = float(os.environ.get("BENCH_ARQ_POLL_DELAY", "0.005"))
    log_results = False


class ArqPeer(Peer):
    system = "arq-redis"
    default_workers = 2

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--max-jobs", type=int, default=10)
        parser.add_argument("--poll-delay", type=float, default=0.005)

    def version(self) -> str:
        return dist_version("arq")

    def config(self, opts: argparse.Namespace) -> dict[str, Any]:
        return {
            "processes": opts.workers,
            "max_jobs": opts.max_jobs,
            "poll_delay_s": opts.poll_delay,
            "keep_result_s": 3600,
            "broker": REDIS_URL,
        }

    def worker_env(self, opts: argparse.Namespace) -> dict[str, str]:
        return {
            "BENCH_ARQ_MAX_JOBS": str(opts.max_jobs),
            "BENCH_ARQ_POLL_DELAY": str(opts.poll_delay),
        }

    def worker_commands(self, opts: argparse.Namespace) -> list[list[str]]:
        return [[sys.executable, "-m", "bench.peers.arq_redis", "worker"]] * opts.workers

    async def open(self, opts: argparse.Namespace) -> None:
        from arq import create_pool

        self.pool = await create_pool(WorkerSettings.redis_settings)

    async def reset(self) -> None:
        await self.pool.flushdb()  # a database of its own (/12)

    async def enqueue_bulk(self, n: int) -> None:
        chunk = 50  # the pool holds max_connections (arq default 50) connections
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
            await asyncio.gather(*(self.pool.enqueue_job("noop", 0) for _ in range(size)))

    async def enqueue_one(self, enqueued_at: float) -> None:
        await self.pool.enqueue_job("noop", enqueued_at)

    async def settled(self) -> bool:
        # A job is finished once its result is stored and its in-progress key deleted.
        if await self.pool.zcard("arq:queue"):
            return False
        async for _ in self.pool.scan_iter(match="arq:in-progress:*", count=10_000):
            return False
        return True

    async def close(self) -> None:
        if getattr(self, "pool", None) is not None:
            await self.pool.aclose()


def run_worker() -> None:
    import logging

    from arq.worker import run_worker as arq_run_worker

    logging.basicConfig(level=logging.WARNING)
    arq_run_worker(WorkerSettings)  # type: ignore[arg-type]


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        run_worker()
    else:
        sys.exit(main(ArqPeer()))
