"""Remote workers under load: a real ``faena server`` subprocess and in-process agents.

    python -m bench.workers_cluster [--scenarios latency,connect,concurrent,logs,throughput]
                                    [--workers 100] [--jobs 5000] [--log-jobs 100]
                                    [--log-lines 10000] [--concurrent 1000]

latency      log delivery from a worker's ``job.log()`` to an SSE client following the job
             (``GET /v1/jobs/{id}/logs?follow=true``): each line carries ``time.time()`` at
             the print; p50/p99 over ``--stamps`` lines (target p99 < 10 ms)
connect      ``--workers`` agents connect and register; time until the registry lists all
concurrent   ``--concurrent`` sleep(5) jobs on ``--workers`` agents (slots enough for all):
             the peak number running at once, and the wall time
logs         ``--log-jobs`` jobs each logging ``--log-lines`` lines; lines stored / minute,
             and a count of every stored line (no loss)
throughput   ``--jobs`` noop jobs through remote workers vs. the local pool of ``faena up``

The agents run in this process (one event loop), so the server sees ``--workers`` real gRPC
streams without ``--workers`` Python processes. Every scenario is bounded by ``--timeout``.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import sys
import time
from typing import Any

import httpx
from bench.faena_embedded import FaenaServer

SCENARIOS = ("latency", "connect", "concurrent", "logs", "throughput")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    def __init__(self, opts: argparse.Namespace, *, local_slots: int = 0) -> None:
        self.grpc_port = free_port()
        command = "up" if local_slots else "server"
        args = ["--grpc-port", str(self.grpc_port)]
        if local_slots:
            args += ["--workers", str(local_slots)]
        self.server = FaenaServer(
            command=command,
            args=args,
            env={"FAENA_LOG_LEVEL": "warning", "FAENA_UI": "false"},
            database_url=opts.database_url,
        )
        self.opts = opts
        self.agents: list[Any] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Cluster:
        await asyncio.to_thread(self.server.start)
        self.http = httpx.AsyncClient(
            base_url=self.server.url,
            headers={"Authorization": f"Bearer {self.server.key}"},
            timeout=60,
            limits=httpx.Limits(max_connections=50),
        )
        r = await self.http.post("/v1/workers/tokens", json={"name": "bench"})
        r.raise_for_status()
        self.token = r.json()["token"]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for agent in self.agents:
            agent._stop.set()
            if agent._call is not None:
                agent._call.cancel()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.http.aclose()
        await asyncio.to_thread(self.server.cleanup)

    async def start_agents(self, n: int, slots: int) -> float:
        """Start ``n`` agents of ``slots`` slots; seconds until the registry lists them all."""
        import bench.workers_tasks  # noqa: F401 - registers the bench tasks

        from faena.domain.workers import Capacity
        from faena.worker.agent import Agent, AgentConfig
        from faena.worker.executor import Executor
        from faena.worker.registry import default_registry

        executor = Executor(default_registry, allow_shell=False)
        t0 = time.perf_counter()
        for _ in range(n):
            config = AgentConfig(
                server=f"127.0.0.1:{self.grpc_port}",
                token=self.token,
                worker_id=f"bench-{len(self.agents)}",
                capacity=Capacity(slots=slots, cpu_cores=4, memory_mb=4096),
            )
            agent = Agent(config, executor)
            self.agents.append(agent)
            self.tasks.append(asyncio.get_running_loop().create_task(agent.run()))
        want = len(self.agents)
        while True:
            r = await self.http.get("/v1/workers")
            live = [w for w in r.json()["workers"] if w["live"] and w["kind"] == "remote"]
            if len(live) >= want:
                return time.perf_counter() - t0
            await asyncio.sleep(0.05)

    async def submit(self, jobs: list[dict[str, Any]]) -> list[str]:
        ids: list[str] = []
        for start in range(0, len(jobs), 500):
            r = await self.http.post("/v1/jobs/batch", json={"jobs": jobs[start : start + 500]})
            r.raise_for_status()
            ids += [j["id"] for j in r.json()]
        return ids

    async def counts(self) -> dict[str, int]:
        r = await self.http.get("/v1/stats")
        return dict(r.json()["by_state"])

    async def wait_done(self, n: int, poll_s: float = 0.05) -> None:
        while True:
            c = await self.counts()
            if c.get("succeeded", 0) + c.get("failed", 0) + c.get("cancelled", 0) >= n:
                return
            await asyncio.sleep(poll_s)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def scenario_latency(opts: argparse.Namespace) -> dict[str, Any]:
    async with Cluster(opts) as c:
        await c.start_agents(1, 4)
        delays: list[float] = []
        for _ in range(opts.latency_jobs):
            (job_id,) = await c.submit(
                [{"kind": "bench_stamp", "payload": {"n": opts.stamps, "every_s": 0.01}}]
            )
            async with c.http.stream(
                "GET", f"/v1/jobs/{job_id}/logs", params={"follow": "true"}
            ) as r:
                async for line in r.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    now = time.time()
                    chunk = json.loads(line[5:])
                    for text in str(chunk.get("data", "")).splitlines():
                        stamp = text.split(" ", 1)[0]
                        with contextlib.suppress(ValueError):
                            delays.append((now - float(stamp)) * 1000)
        return {
            "lines": len(delays),
            "p50_ms": round(statistics.median(delays), 2),
            "p99_ms": round(pct(delays, 0.99), 2),
            "max_ms": round(max(delays), 2),
            "target_p99_ms": 10,
        }


async def scenario_connect(opts: argparse.Namespace) -> dict[str, Any]:
    async with Cluster(opts) as c:
        seconds = await c.start_agents(opts.workers, 10)
        n = min(opts.jobs, 2000)
        t0 = time.perf_counter()
        await c.submit([{"kind": "noop"} for _ in range(n)])
        await c.wait_done(n)
        elapsed = time.perf_counter() - t0
        mem = c.server.memory()
        return {
            "workers": opts.workers,
            "all_registered_s": round(seconds, 2),
            "noop_jobs": n,
            "jobs_per_s_with_all_connected": round(n / elapsed),
            "server_rss_mb": mem["rss_mb"],
        }


async def scenario_concurrent(opts: argparse.Namespace) -> dict[str, Any]:
    async with Cluster(opts) as c:
        slots = -(-opts.concurrent // opts.workers)
        await c.start_agents(opts.workers, slots)
        t0 = time.perf_counter()
        await c.submit(
            [{"kind": "sleep", "payload": {"seconds": 5}} for _ in range(opts.concurrent)]
        )
        peak = 0
        all_running_s = None
        while True:
            counts = await c.counts()
            running = counts.get("running", 0)
            peak = max(peak, running)
            if all_running_s is None and running >= opts.concurrent:
                all_running_s = time.perf_counter() - t0
            if counts.get("succeeded", 0) >= opts.concurrent:
                break
            await asyncio.sleep(0.1)
        return {
            "jobs": opts.concurrent,
            "workers": opts.workers,
            "peak_running": peak,
            "all_running_after_s": None if all_running_s is None else round(all_running_s, 2),
            "wall_s": round(time.perf_counter() - t0, 2),
        }


async def scenario_logs(opts: argparse.Namespace) -> dict[str, Any]:
    async with Cluster(opts) as c:
        await c.start_agents(opts.log_jobs // 10 or 1, 10)
        total = opts.log_jobs * opts.log_lines
        t0 = time.perf_counter()
        ids = await c.submit(
            [
                {"kind": "bench_spew", "payload": {"lines": opts.log_lines}}
                for _ in range(opts.log_jobs)
            ]
        )
        await c.wait_done(len(ids), poll_s=0.2)
        elapsed = time.perf_counter() - t0
        stored = 0
        for job_id in ids:
            after = 0
            while True:
                r = await c.http.get(f"/v1/jobs/{job_id}/logs", params={"after": after})
                chunks = r.json()["chunks"]
                if not chunks:
                    break
                stored += sum(ch["data"].count("\n") for ch in chunks if ch["stream"] == "stdout")
                after = chunks[-1]["cursor"]
        return {
            "jobs": opts.log_jobs,
            "lines": total,
            "stored_lines": stored,
            "lost": total - stored,
            "seconds": round(elapsed, 2),
            "lines_per_minute": round(total / elapsed * 60),
            "target_lines_per_minute": 1_000_000,
        }


async def _noop_rate(c: Cluster, n: int) -> float:
    t0 = time.perf_counter()
    await c.submit([{"kind": "noop"} for _ in range(n)])
    await c.wait_done(n)
    return n / (time.perf_counter() - t0)


async def scenario_throughput(opts: argparse.Namespace) -> dict[str, Any]:
    async with Cluster(opts) as c:
        await c.start_agents(4, 100)
        remote = await _noop_rate(c, opts.jobs)
    async with Cluster(opts, local_slots=100) as c:
        local = await _noop_rate(c, opts.jobs)
    return {
        "jobs": opts.jobs,
        "remote_jobs_per_s": round(remote),
        "local_jobs_per_s": round(local),
        "remote_over_local": round(remote / local, 2),
    }


async def run(opts: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"bench": "workers_cluster"}
    for name in opts.scenarios.split(","):
        fn = globals()[f"scenario_{name}"]
        try:
            async with asyncio.timeout(opts.timeout):
                out[name] = await fn(opts)
        except Exception as e:  # one failing scenario does not hide the others
            out[name] = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps({name: out[name]}), file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--workers", type=int, default=100)
    p.add_argument("--jobs", type=int, default=5000)
    p.add_argument("--concurrent", type=int, default=1000)
    p.add_argument("--log-jobs", type=int, default=100)
    p.add_argument("--log-lines", type=int, default=10_000)
    p.add_argument("--stamps", type=int, default=100)
    p.add_argument("--latency-jobs", type=int, default=5)
    p.add_argument("--timeout", type=float, default=300.0, help="per scenario")
    p.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    opts = p.parse_args(argv)
    print(json.dumps(asyncio.run(run(opts))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
