"""Throughput of the PostgreSQL store's hot path: submit, claim, complete (jobs/s).

Runs against a real PostgreSQL with its own durable settings (fsync and synchronous_commit as
configured; the values are reported), in a throw-away schema that is dropped afterwards.

Phases, each over the same ``--jobs`` jobs:
  submit    batches of ``--submit-batch`` by ``--concurrency`` concurrent submitters
  claim     batches of ``--claim-batch`` by ``--concurrency`` concurrent claimers until empty
  complete  batches of ``--complete-batch`` by ``--concurrency`` concurrent completers
  pipeline  all three at once (submitters, claimers and completers overlapping), as a server
            with its worker pool runs them: the end-to-end figure

``--notify off`` disables the NOTIFY triggers (migration 0003) to measure what announcing every
change costs; with ``on`` (the default) a listener connection counts what other servers would
hear.

``--finished N`` first fills the table with N finished jobs (issue 3: claim speed must not
depend on how many finished jobs the table holds).

Prints one JSON line. Bounded: ``--jobs`` caps the work, ``--max-seconds`` the time per phase.

    .venv/bin/python bench/pg_store_throughput.py [--url postgresql://...] [--jobs 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from typing import Any

import asyncpg

from faena.adapters.postgres.store import PostgresStore
from faena.domain.ids import new_id
from faena.domain.jobs import Job, JobSpec, JobState
from faena.ports.store import ClaimParams, CompleteParams, Completion, SubmitParams

DEFAULT_URL = os.environ.get("FAENA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def specs(n: int) -> list[JobSpec]:
    return [JobSpec(kind="noop", payload={"i": i, "note": "benchmark"}) for i in range(n)]


def completions(jobs: list[Job]) -> list[Completion]:
    return [Completion(j.id, j.attempts, JobState.SUCCEEDED, result={"ok": True}) for j in jobs]


async def phase_submit(store: PostgresStore, n: int, batch: int, conc: int, deadline: float) -> int:
    todo = [specs(min(batch, n - i)) for i in range(0, n, batch)]

    async def submitter() -> int:
        done = 0
        while todo and time.monotonic() < deadline:
            chunk = todo.pop()
            await store.submit_many(SubmitParams(chunk, [new_id() for _ in chunk], time.time()))
            done += len(chunk)
        return done

    return sum(await asyncio.gather(*(submitter() for _ in range(conc))))


async def phase_claim(store: PostgresStore, batch: int, conc: int, deadline: float) -> list[Job]:
    claimed: list[Job] = []

    async def claimer(worker: str) -> None:
        while time.monotonic() < deadline:
            jobs = await store.claim(ClaimParams(worker, batch, lease_s=60, now=time.time()))
            if not jobs:
                return
            claimed.extend(jobs)

    await asyncio.gather(*(claimer(f"w{i}") for i in range(conc)))
    return claimed


async def phase_complete(
    store: PostgresStore, jobs: list[Job], batch: int, conc: int, deadline: float
) -> int:
    todo = [jobs[i : i + batch] for i in range(0, len(jobs), batch)]

    async def completer() -> int:
        done = 0
        while todo and time.monotonic() < deadline:
            chunk = todo.pop()
            done += len(await store.complete_many(CompleteParams(completions(chunk), time.time())))
        return done

    return sum(await asyncio.gather(*(completer() for _ in range(conc))))


async def phase_pipeline(store: PostgresStore, args: argparse.Namespace, deadline: float) -> int:
    """Submit, claim and complete overlapping; returns the number of jobs completed."""
    n = args.jobs
    submitted = asyncio.Event()
    finished = 0
    outbox: asyncio.Queue[list[Job]] = asyncio.Queue()

    async def submitters() -> None:
        await phase_submit(store, n, args.submit_batch, max(1, args.concurrency // 2), deadline)
        submitted.set()

    async def claimer(worker: str) -> None:
        while time.monotonic() < deadline:
            jobs = await store.claim(
                ClaimParams(worker, args.claim_batch, lease_s=60, now=time.time())
            )
            if jobs:
                await outbox.put(jobs)
            elif submitted.is_set():
                return
            else:
                await asyncio.sleep(0.002)  # a real worker waits for NOTIFY here

    async def completer() -> None:
        nonlocal finished
        pending: list[Job] = []
        while time.monotonic() < deadline and finished < n:
            with contextlib.suppress(TimeoutError):
                pending.extend(await asyncio.wait_for(outbox.get(), 0.02))
            # flush when the batch is full or nothing else is waiting (a short flush window)
            if pending and (len(pending) >= args.complete_batch or outbox.empty()):
                batch, pending = pending[: args.complete_batch], pending[args.complete_batch :]
                applied = await store.complete_many(CompleteParams(completions(batch), time.time()))
                finished += len(applied)  # not `finished += len(await ...)`: that loses updates

    claimers = [claimer(f"p{i}") for i in range(args.concurrency)]
    await asyncio.gather(submitters(), *claimers, completer(), completer())
    return finished


PREFILL_FINISHED = """
INSERT INTO jobs (id, tenant, kind, queue, state, payload, result, attempts, created_at,
                  started_at, finished_at, worker_id)
SELECT '00000000-' || lpad(to_hex(i), 27, '0'), 'default', 'noop', 'default', 'succeeded',
       '{"i": 1}', '{"ok": true}', 1, 0, 0, 0, 'w0'
FROM generate_series(1, $1) AS i"""


async def prefill_finished(url: str, schema: str, n: int) -> None:
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    try:
        await conn.execute(PREFILL_FINISHED, n)
        await conn.execute("VACUUM ANALYZE jobs")
    finally:
        await conn.close()


async def set_notify_triggers(url: str, schema: str, *, enabled: bool) -> None:
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    try:
        verb = "ENABLE" if enabled else "DISABLE"
        await conn.execute(f"ALTER TABLE jobs {verb} TRIGGER USER")
        await conn.execute(f"ALTER TABLE job_logs {verb} TRIGGER USER")
    finally:
        await conn.close()


async def server_settings(url: str) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    try:
        names = ("server_version", "fsync", "synchronous_commit", "wal_level", "shared_buffers")
        return {name: await conn.fetchval(f"SHOW {name}") for name in names}
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    schema = f"faena_bench_{uuid.uuid4().hex[:8]}"
    store = PostgresStore(args.url, schema=schema, min_size=2, max_size=args.pool)
    await store.open()
    results: dict[str, Any] = {
        "bench": "pg_store_throughput",
        "jobs": args.jobs,
        "concurrency": args.concurrency,
        "batches": {
            "submit": args.submit_batch,
            "claim": args.claim_batch,
            "complete": args.complete_batch,
        },
        "postgres": await server_settings(args.url),
        "python": sys.version.split()[0],
        "finished_jobs_in_table": args.finished,
    }
    listener = await asyncpg.connect(args.url)
    heard = {"notifications": 0, "bytes": 0, "lines": 0}

    def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        heard["notifications"] += 1
        heard["bytes"] += len(payload)
        heard["lines"] += payload.count("\n")

    try:
        if args.notify == "off":
            await set_notify_triggers(args.url, schema, enabled=False)
        else:
            await listener.add_listener(store.channel, on_notify)
        if args.finished:
            await prefill_finished(args.url, schema, args.finished)
        timings: dict[str, float] = {}
        t = time.perf_counter()
        n = await phase_submit(
            store, args.jobs, args.submit_batch, args.concurrency, _deadline(args)
        )
        timings["submit"] = time.perf_counter() - t
        t = time.perf_counter()
        claimed = await phase_claim(store, args.claim_batch, args.concurrency, _deadline(args))
        timings["claim"] = time.perf_counter() - t
        t = time.perf_counter()
        completed = await phase_complete(
            store, claimed, args.complete_batch, args.concurrency, _deadline(args)
        )
        timings["complete"] = time.perf_counter() - t
        counts = {"submit": n, "claim": len(claimed), "complete": completed}
        for name, seconds in timings.items():
            results[f"{name}_jobs_per_s"] = round(counts[name] / seconds)
        results["sequential_end_to_end_jobs_per_s"] = round(completed / sum(timings.values()))
        t = time.perf_counter()
        piped = await phase_pipeline(store, args, _deadline(args))
        results["pipeline_end_to_end_jobs_per_s"] = round(piped / (time.perf_counter() - t))
        results["pipeline_jobs"] = piped
        results["complete"] = counts["complete"] == args.jobs and piped == args.jobs
        await asyncio.sleep(0.2)  # the last notifications
        results["notify"] = args.notify
        results["heard"] = heard
    finally:
        await listener.close()
        await store.close()
        conn = await asyncpg.connect(args.url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()
    return results


def _deadline(args: argparse.Namespace) -> float:
    return time.monotonic() + args.max_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--submit-batch", type=int, default=500)
    parser.add_argument("--claim-batch", type=int, default=200)
    parser.add_argument("--complete-batch", type=int, default=1000)
    parser.add_argument("--notify", choices=("on", "off"), default="on", help="NOTIFY triggers")
    parser.add_argument("--finished", type=int, default=0, help="finished jobs to prefill")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="per phase")
    args = parser.parse_args()
    if args.jobs > 1_000_000 or args.finished > 5_000_000:
        parser.error("--jobs is capped at 1,000,000 and --finished at 5,000,000")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
