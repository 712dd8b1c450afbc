"""faena cold start and resident memory.

    python -m bench.coldstart [--runs 5] [--jobs 20000]

cold start
    ``faena up --port 0`` spawned in a fresh temp dir (new SQLite file: migrations run, the
    bootstrap key is created) until ``GET /readyz`` answers 200 (polled every 2 ms after the
    URL is printed). Median of ``--runs``. Also: the same on an existing database (restart),
    and the bare interpreter start (``python -c pass``) as the floor.
memory
    VmRSS of the ``faena up`` process idle 1 s after ready, then at the end of a throughput
    run (``--jobs`` noop jobs through ``POST /v1/jobs/batch``, as in bench.faena_embedded) and
    its high-water mark (VmHWM).

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from typing import Any

from bench.faena_embedded import FaenaServer, _throughput, bench_lock, faena_version, wait_quiet

COLD_TARGET_S = 1.5
RSS_TARGET_MB = 150.0


def start_once(server: FaenaServer) -> dict[str, float]:
    server.spawn()
    server.wait_announced()
    ready = server.wait_ready(poll_s=0.002)
    return {
        "announced_s": server.announced_at - server.spawned_at,
        "ready_s": ready - server.spawned_at,
    }


def interpreter_floor(runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--jobs", type=int, default=20_000, help="jobs for the memory-under-load run")
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--submitters", type=int, default=4)
    opts = p.parse_args(argv)
    bench_lock()
    quiet = wait_quiet()

    cold: list[dict[str, float]] = []
    restart: list[dict[str, float]] = []
    idle_rss: list[float] = []
    for _ in range(opts.runs):
        server = FaenaServer()
        try:
            cold.append(start_once(server))
            time.sleep(1.0)
            idle_rss.append(server.memory()["rss_mb"])
            server.stop()
            restart.append(start_once(server))  # same home: existing database
        finally:
            server.cleanup()
        time.sleep(0.3)

    server = FaenaServer()
    try:
        server.start()
        time.sleep(1.0)
        load = asyncio.run(
            _throughput(
                server,
                argparse.Namespace(
                    jobs=opts.jobs,
                    batch=opts.batch,
                    submitters=opts.submitters,
                    timeout=300.0,
                    profile=None,
                ),
            )
        )
    finally:
        server.cleanup()

    def med(rows: list[dict[str, float]], key: str) -> float:
        return round(statistics.median(r[key] for r in rows), 3)

    out: dict[str, Any] = {
        "system": "faena",
        "scenario": "coldstart",
        "runs": opts.runs,
        "cold_ready_s": med(cold, "ready_s"),
        "cold_ready_s_all": [round(r["ready_s"], 3) for r in cold],
        "cold_announced_s": med(cold, "announced_s"),
        "restart_ready_s": med(restart, "ready_s"),
        "python_floor_s": round(interpreter_floor(opts.runs), 3),
        "rss_idle_mb": statistics.median(idle_rss),
        "rss_idle_mb_all": idle_rss,
        "load_jobs": opts.jobs,
        "load_jobs_per_s": load["jobs_per_s"],
        "rss_before_load_mb": load["rss_idle_mb"],
        "rss_end_of_load_mb": load["rss_end_mb"],
        "rss_peak_mb": load["rss_peak_mb"],
        "targets": {"cold_ready_s": COLD_TARGET_S, "rss_mb": RSS_TARGET_MB},
        "version": faena_version(),
        "machine": quiet,
    }
    out["meets_targets"] = (
        out["cold_ready_s"] < COLD_TARGET_S
        and max(out["rss_idle_mb"], out["rss_peak_mb"]) < RSS_TARGET_MB
    )
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
