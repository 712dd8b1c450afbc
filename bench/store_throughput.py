"""Store-level throughput: submit, claim and complete N noop jobs, in batches, as fast as possible.

    python bench/store_throughput.py --backend sqlite --jobs 20000

Phases run one after the other on a fresh store: submit in batches of 500, claim in batches of
100, complete in batches of 500. Prints one JSON line with jobs/s per phase and end to end (all
N jobs through all three phases, divided by their total wall time), and end to end per
CPU-second of the process (wall time suffers when other processes share the cores; CPU time
much less). Bounded: at most ``MAX_JOBS`` jobs and ``--max-seconds`` of work, after which it
stops and reports what it did.
``--profile FILE`` writes a cProfile of the run (read it with ``python -m pstats FILE``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from faena.domain.ids import new_id
from faena.domain.jobs import JobSpec, JobState
from faena.ports.store import (
    ClaimParams,
    CompleteParams,
    Completion,
    JobStore,
    SubmitParams,
)

MAX_JOBS = 1_000_000


async def make_store(args: argparse.Namespace, folder: Path) -> JobStore:
    if args.backend == "memory":
        from faena.adapters.memory.store import MemoryStore

        return MemoryStore()
    if args.backend == "sqlite":
        from faena.adapters.sqlite.store import SqliteStore

        return SqliteStore(folder / "bench.db", synchronous=args.synchronous)
    raise SystemExit(f"unknown backend {args.backend!r}")


class OutOfTime(Exception):
    pass


async def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    store = await make_store(args, folder)
    await store.open()
    deadline = time.perf_counter() + args.max_seconds
    cpu_start = time.process_time()  # all threads of this process: the store's own cost
    phases: dict[str, float] = {}
    done = {"submitted": 0, "claimed": 0, "completed": 0}

    def check_time() -> None:
        if time.perf_counter() > deadline:
            raise OutOfTime

    try:
        spec = JobSpec(kind="noop", payload={"n": 1})
        t0 = time.perf_counter()
        while done["submitted"] < args.jobs:
            n = min(args.submit_batch, args.jobs - done["submitted"])
            ids = [new_id() for _ in range(n)]
            await store.submit_many(SubmitParams([spec] * n, ids, time.time()))
            done["submitted"] += n
            check_time()
        phases["submit"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        running: list[Completion] = []
        while done["claimed"] < args.jobs:
            params = ClaimParams(
                worker_id="bench", limit=args.claim_batch, lease_s=60.0, now=time.time()
            )
            jobs = await store.claim(params)
            if not jobs:
                break
            done["claimed"] += len(jobs)
            running.extend(Completion(j.id, j.attempts, JobState.SUCCEEDED) for j in jobs)
            check_time()
        phases["claim"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        for i in range(0, len(running), args.complete_batch):
            batch = running[i : i + args.complete_batch]
            applied = await store.complete_many(CompleteParams(batch, time.time()))
            done["completed"] += len(applied)
            check_time()
        phases["complete"] = time.perf_counter() - t0
        stopped = None
    except OutOfTime:
        stopped = f"stopped after --max-seconds={args.max_seconds}"
    finally:
        cpu = time.process_time() - cpu_start
        await store.close()

    def rate(count: int, seconds: float | None) -> float | None:
        return round(count / seconds) if seconds else None

    total = sum(phases.values())
    return {
        "backend": args.backend,
        "jobs": args.jobs,
        "batches": {
            "submit": args.submit_batch,
            "claim": args.claim_batch,
            "complete": args.complete_batch,
        },
        "submit_jobs_per_s": rate(done["submitted"], phases.get("submit")),
        "claim_jobs_per_s": rate(done["claimed"], phases.get("claim")),
        "complete_jobs_per_s": rate(done["completed"], phases.get("complete")),
        "end_to_end_jobs_per_s": rate(done["completed"], total) if len(phases) == 3 else None,
        "seconds": round(total, 3),
        # Jobs per CPU-second: what the store costs, less sensitive to a busy machine.
        "end_to_end_jobs_per_cpu_s": rate(done["completed"], cpu) if len(phases) == 3 else None,
        "cpu_seconds": round(cpu, 3),
        "done": done,
        "stopped": stopped,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["memory", "sqlite"], default="sqlite")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--submit-batch", type=int, default=500)
    parser.add_argument("--claim-batch", type=int, default=100)
    parser.add_argument("--complete-batch", type=int, default=500)
    parser.add_argument("--synchronous", default="NORMAL", help="SQLite synchronous pragma")
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the run")
    args = parser.parse_args()
    if not 1 <= args.jobs <= MAX_JOBS:
        parser.error(f"--jobs must be between 1 and {MAX_JOBS}")
    with tempfile.TemporaryDirectory(prefix="faena-bench-") as folder:
        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            profiler.enable()
        result = asyncio.run(run(args, Path(folder)))
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
