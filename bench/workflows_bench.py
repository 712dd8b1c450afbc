"""Workflow benchmarks against ``faena up`` (SQLite) or ``faena server`` (PostgreSQL), through
the HTTP API. Prints one JSON line per measurement.

    python -m bench.workflows_bench webhooks [--calls 500]
    python -m bench.workflows_bench linear [--runs 200] [--steps 5] [--concurrency 50]

webhooks
    A workflow with ``webhook: true`` and one ``noop`` step. ``--calls`` ``POST /v1/hooks/{token}``
    are fired at once (one connection each); the clock runs from the first request to the last
    answer. Every answer must be 202 with a run in ``running`` state: the run is stored and its
    first step's job submitted before the answer. Target: 500 calls in under 1 s.
linear
    A workflow of ``--steps`` ``noop`` steps in a line. ``--runs`` runs are started by
    ``--concurrency`` clients; the clock stops when no run is ``running``. Then the same work
    as plain jobs, two ways: (a) ``chained``: each of ``--runs`` clients submits a job, waits for
    it (long-poll), submits the next, ``--steps`` times — the same dependency as the workflow;
    (b) ``batch``: all ``runs x steps`` jobs submitted in batches of 500 with no dependency.
    ``step_cost_ratio_*`` = (workflow seconds per step) / (plain seconds per job).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from bench.faena_embedded import FaenaServer, bench_lock

LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)


async def raw_request(host: str, port: int, request: bytes) -> tuple[int, dict[str, Any]]:
    """One HTTP/1.1 request on a fresh connection, with asyncio streams: a lean client, so the
    burst measures the server rather than the client (httpx spends ~10 ms of CPU per new
    connection here, which alone takes seconds for 500 at once on two cores)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length")
        )
        body = await reader.readexactly(length)
    finally:
        writer.close()
    return int(lines[0].split()[1]), json.loads(body)


def _client(server: FaenaServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url,
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=60,
        limits=LIMITS,
    )


async def _webhooks(server: FaenaServer, calls: int) -> dict[str, Any]:
    async with _client(server) as api:
        r = await api.put(
            "/v1/workflows/hooked",
            json={"webhook": True, "steps": [{"id": "a", "kind": "noop"}]},
        )
        r.raise_for_status()
        path = r.json()["webhook_path"]
        warm = await api.post(path, json={})
        assert warm.status_code == 202, warm.text
    parts = urlsplit(server.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\nConnection: close\r\n\r\n{}"
    ).encode()
    latencies: list[float] = []

    async def call() -> tuple[int, dict[str, Any]]:
        t = time.perf_counter()
        status, body = await raw_request(host, port, request)
        latencies.append(time.perf_counter() - t)
        return status, body

    start = time.perf_counter()
    responses = await asyncio.gather(*(call() for _ in range(calls)))
    elapsed = time.perf_counter() - start
    async with _client(server) as api:
        await _until_no_running(api)
    finished = time.perf_counter() - start
    accepted = [body for status, body in responses if status == 202]
    running = [b for b in accepted if b["state"] in ("running", "succeeded")]
    latencies.sort()
    return {
        "bench": "workflow_webhooks",
        "calls": calls,
        "accepted": len(accepted),
        "runs_started": len(running),
        "seconds": round(elapsed, 3),
        "calls_per_s": round(calls / elapsed, 1),
        "all_runs_finished_s": round(finished, 3),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
        "target_met": len(running) == calls and elapsed < 1.0,
    }


async def _until_no_running(api: httpx.AsyncClient, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = (await api.get("/v1/runs", params={"state": "running", "limit": 1})).json()
        if not page["runs"]:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("runs still running")


async def _until_jobs_done(api: httpx.AsyncClient, total: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = (await api.get("/v1/stats")).json()
        by_state = stats.get("by_state", stats)
        if by_state.get("succeeded", 0) >= total:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("jobs not done")


async def _linear(server: FaenaServer, runs: int, steps: int, concurrency: int) -> dict[str, Any]:
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
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(runs):
            queue.put_nowait(i)

        async def starter() -> None:
            while not queue.empty():
                queue.get_nowait()
                r = await api.post("/v1/workflows/linear/runs", json={})
                assert r.status_code == 201, r.text

        start = time.perf_counter()
        await asyncio.gather(*(starter() for _ in range(concurrency)))
        await _until_no_running(api)
        wf_s = time.perf_counter() - start
        failed = (await api.get("/v1/runs", params={"state": "failed", "limit": 1})).json()
        assert not failed["runs"], failed

        async def chain() -> None:
            for _ in range(steps):
                r = await api.post("/v1/jobs", json={"kind": "noop"})
                job_id = r.json()["id"]
                while True:
                    job = (await api.get(f"/v1/jobs/{job_id}", params={"wait": 10})).json()
                    if job["state"] == "succeeded":
                        break

        sem = asyncio.Semaphore(concurrency)

        async def limited_chain() -> None:
            async with sem:
                await chain()

        start = time.perf_counter()
        await asyncio.gather(*(limited_chain() for _ in range(runs)))
        chained_s = time.perf_counter() - start

        before = (await api.get("/v1/stats")).json()
        done_before = before.get("by_state", before).get("succeeded", 0)
        total = runs * steps
        start = time.perf_counter()
        for offset in range(0, total, 500):
            n = min(500, total - offset)
            r = await api.post("/v1/jobs/batch", json=[{"kind": "noop"}] * n)
            assert r.status_code == 201, r.text
        await _until_jobs_done(api, done_before + total)
        batch_s = time.perf_counter() - start
    per_step = wf_s / (runs * steps)
    return {
        "bench": "workflow_linear",
        "runs": runs,
        "steps": steps,
        "concurrency": concurrency,
        "workflow_seconds": round(wf_s, 3),
        "runs_per_s": round(runs / wf_s, 1),
        "steps_per_s": round(runs * steps / wf_s, 1),
        "chained_jobs_seconds": round(chained_s, 3),
        "batch_jobs_seconds": round(batch_s, 3),
        "step_ms": round(per_step * 1000, 3),
        "step_cost_ratio_chained": round(wf_s / chained_s, 2),
        "step_cost_ratio_batch": round(wf_s / batch_s, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workflows_bench")
    sub = parser.add_subparsers(dest="what", required=True)
    hooks = sub.add_parser("webhooks")
    hooks.add_argument("--calls", type=int, default=500)
    linear = sub.add_parser("linear")
    linear.add_argument("--runs", type=int, default=200)
    linear.add_argument("--steps", type=int, default=5)
    linear.add_argument("--concurrency", type=int, default=50)
    for p in (hooks, linear):
        p.add_argument("--database-url", default=None, help="PostgreSQL URL (default: SQLite)")
        p.add_argument("--workers", type=int, default=100)
    opts = parser.parse_args(argv)
    bench_lock()
    command = "server" if opts.database_url else "up"
    server = FaenaServer(
        args=["--workers", str(opts.workers)],
        database_url=opts.database_url,
        command=command,
        env={"FAENA_LOG_LEVEL": "warning"},
    )
    server.start()
    try:
        if opts.what == "webhooks":
            result = asyncio.run(_webhooks(server, opts.calls))
        else:
            result = asyncio.run(_linear(server, opts.runs, opts.steps, opts.concurrency))
        result["store"] = "postgres" if opts.database_url else "sqlite"
        result["cpus"] = os.cpu_count()
        print(json.dumps(result))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
