"""Celery with the Redis broker, workers run with the ``celery worker`` CLI.

Configuration (defaults; see bench/README.md for why): one ``celery worker`` process with
the prefork pool and ``--concurrency 2`` (one child per core, Celery's default on this
machine), ``--prefetch-multiplier 64`` (the "Optimizing" guide: short tasks want a high
multiplier), early acks (``acks_late`` off, Celery's default), no result backend
(``task_ignore_result``), gossip/mingle/heartbeat off. ``--pool threads`` / ``solo`` and
other values are one option away. Celery has no bulk enqueue API: jobs are sent one
``apply_async`` at a time over one producer connection, as ``group()`` would send them.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from bench.peers._common import (
    REDIS_HOST,
    REDIS_PORT,
    Peer,
    dist_version,
    main,
    record,
    venv_script,
)
from celery import Celery

REDIS_URL = os.environ.get("BENCH_CELERY_REDIS_URL", f"redis://{REDIS_HOST}:{REDIS_PORT}/11")
QUEUE = "faena_bench"

app = Celery("faena_bench", broker=REDIS_URL)
app.conf.update(
    task_ignore_result=True,
    task_default_queue=QUEUE,
    task_acks_late=False,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_redirect_stdouts=False,
    task_serializer="json",
    accept_content=["json"],
)


@app.task(name="faena_bench.noop")
def noop(enqueued_at: float) -> None:
    record(enqueued_at)


class CeleryPeer(Peer):
    system = "celery-redis"
    default_workers = 1  # one worker process; its pool holds --concurrency children

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--pool", default="prefork", choices=["prefork", "threads", "solo"])
        parser.add_argument("--concurrency", type=int, default=2)
        parser.add_argument("--prefetch-multiplier", type=int, default=64)

    def version(self) -> str:
        return dist_version("celery")

    def config(self, opts: argparse.Namespace) -> dict[str, Any]:
        return {
            "worker_processes": opts.workers,
            "pool": opts.pool,
            "concurrency": opts.concurrency,
            "prefetch_multiplier": opts.prefetch_multiplier,
            "acks_late": False,
            "result_backend": None,
            "broker": REDIS_URL,
        }

    def worker_commands(self, opts: argparse.Namespace) -> list[list[str]]:
        return [
            [
                venv_script("celery"),
                "-A",
                "bench.peers.celery_redis",
                "worker",
                "--pool",
                opts.pool,
                "--concurrency",
                str(opts.concurrency),
                "--prefetch-multiplier",
                str(opts.prefetch_multiplier),
                "--queues",
                QUEUE,
                "--hostname",
                f"bench{i}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "WARNING",
            ]
            for i in range(opts.workers)
        ]

    async def open(self, opts: argparse.Namespace) -> None:
        import redis

        self.redis = redis.Redis.from_url(REDIS_URL)
        self.redis.ping()
        self.conn = app.connection_for_write()
        self.conn.ensure_connection(max_retries=3)
        self.producer = app.amqp.Producer(self.conn)

    async def reset(self) -> None:
        self.redis.flushdb()  # a database of its own (/11): the queue and kombu's bindings

    async def enqueue_bulk(self, n: int) -> None:
        for _ in range(n):
            noop.apply_async((0,), producer=self.producer)

    async def enqueue_one(self, enqueued_at: float) -> None:
        noop.apply_async((enqueued_at,), producer=self.producer)

    async def close(self) -> None:
        if getattr(self, "conn", None) is not None:
            self.conn.release()
        if getattr(self, "redis", None) is not None:
            self.redis.close()


if __name__ == "__main__":
    sys.exit(main(CeleryPeer()))
