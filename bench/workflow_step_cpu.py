"""Server CPU per workflow step vs per plain job (the per-step overhead of the engine).

    python -m bench.workflow_step_cpu [--runs 200] [--steps 5] [--database-url URL]
        [--profile FILE]   # py-spy speedscope profile of the server during the workflow phase

Starts ``faena up`` (or ``faena server`` on PostgreSQL), runs ``--runs`` linear workflows of
``--steps`` ``noop`` steps started one per request by 50 concurrent clients, then as many
started in batches of 500 (``POST /v1/workflows/{name}/runs/batch``), then the same number of
plain jobs in batches of 500, and prints one JSON line: wall seconds and the server's CPU time
(user + system, from ``/proc/PID/stat``) per step and per job, and their ratios (``*_batch``:
runs started in batches, as the plain jobs are submitted). CPU time is less disturbed than
wall time by other work on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

from bench.faena_embedded import FaenaServer, bench_lock
from bench.workflows_bench import _client, _until_jobs_done, _until_no_running


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(server: FaenaServer, runs: int, steps: int, profile: str | None) -> Any:
    definition = {
        "steps": [
            {"id": f"s{i}", "kind": "noop", **({"needs": [f"s{i - 1}"]} if i else {})}
            for i in range(steps)
        ]
    }
    async with _client(server) as api:
        (await api.put("/v1/workflows/linear", json=definition)).raise_for_status()
        warm = await api.post("/v1/workflows/linear/runs", params={"wait": 10}, json={})
        assert warm.json()["state"] == "succeeded", warm.text
        spy = None
        if profile:
            command = ["py-spy", "record", "-p", str(server.pid), "-o", profile]
            spy = subprocess.Popen(  # noqa: ASYNC220 - started once, before the clock runs
                [*command, "-f", "speedscope", "-r", "200"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            await asyncio.sleep(1.0)
        limit = asyncio.Semaphore(50)

        async def start() -> None:
            async with limit:
                r = await api.post("/v1/workflows/linear/runs", json={})
                assert r.status_code == 201, r.text

        cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
        await asyncio.gather(*(start() for _ in range(runs)))
        await _until_no_running(api)
        wf_s, wf_cpu = time.perf_counter() - t0, cpu_seconds(server.pid) - cpu0
        if spy is not None:
            spy.send_signal(2)
            await asyncio.to_thread(spy.wait, 30)
        cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
        for offset in range(0, runs, 500):
            batch = [{}] * min(500, runs - offset)
            r = await api.post("/v1/workflows/linear/runs/batch", json=batch)
            assert r.status_code == 201, r.text
        await _until_no_running(api)
        batch_s, batch_cpu = time.perf_counter() - t0, cpu_seconds(server.pid) - cpu0
        stats = (await api.get("/v1/stats")).json()
        done_before = stats.get("by_state", stats).get("succeeded", 0)
        total = runs * steps
        expected = 2 * total + steps  # the warm-up run too
        assert done_before == expected, f"{done_before} step jobs succeeded, not {expected}"
        cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
        for offset in range(0, total, 500):
            batch = [{"kind": "noop"}] * min(500, total - offset)
            r = await api.post("/v1/jobs/batch", json=batch)
            assert r.status_code == 201, r.text
        await _until_jobs_done(api, done_before + total)
        jobs_s, jobs_cpu = time.perf_counter() - t0, cpu_seconds(server.pid) - cpu0
    return {
        "bench": "workflow_step_cpu",
        "runs": runs,
        "steps": steps,
        "workflow_seconds": round(wf_s, 3),
        "jobs_seconds": round(jobs_s, 3),
        "ratio_wall": round(wf_s / jobs_s, 2),
        "cpu_ms_per_step": round(wf_cpu / total * 1000, 3),
        "cpu_ms_per_job": round(jobs_cpu / total * 1000, 3),
        "ratio_cpu": round(wf_cpu / jobs_cpu, 2),
        "batch_workflow_seconds": round(batch_s, 3),
        "ratio_wall_batch": round(batch_s / jobs_s, 2),
        "cpu_ms_per_step_batch": round(batch_cpu / total * 1000, 3),
        "ratio_cpu_batch": round(batch_cpu / jobs_cpu, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workflow_step_cpu")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default: SQLite)")
    parser.add_argument("--profile", default=None, help="write a py-spy speedscope profile")
    opts = parser.parse_args(argv)
    bench_lock()
    server = FaenaServer(
        args=["--workers", "100"],
        database_url=opts.database_url,
        command="server" if opts.database_url else "up",
        env={"FAENA_LOG_LEVEL": "warning"},
    )
    server.start()
    try:
        result = asyncio.run(measure(server, opts.runs, opts.steps, opts.profile))
        result["store"] = "postgres" if opts.database_url else "sqlite"
        print(json.dumps(result))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
