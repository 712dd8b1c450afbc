"""The HTTP API under load, beside a bare FastAPI endpoint measured in the same run.

    python -m bench.api_load [--seconds 10] [--warmup 1] [--no-pin]
        [--paced-submit-rate 1000] [--paced-status-rate 2000]

Four phases, each ``--warmup`` s unrecorded then ``--seconds`` s recorded, every client a
closed loop (send, read the whole response, send again) on its own keep-alive connection:

1. ``submit``: 100 clients ``POST /v1/jobs`` ``{"kind": "noop"}`` to ``faena up`` (the local
   pool runs the jobs meanwhile, as it would in production);
2. ``status``: 200 clients ``GET /v1/jobs/{id}`` over 1,000 existing jobs (round robin);
3. ``bare-post`` / 4. ``bare-get``: the same loads against a bare FastAPI app (one ``POST``
   endpoint that parses the JSON body and answers 201 with a small JSON object, one ``GET
   /v1/jobs/{id}`` that answers a small JSON object; no auth, no store) served by uvicorn
   with faena's own settings (uvloop, httptools, no access log, lifespan off).

The load generator is a minimal HTTP/1.1 client on asyncio + uvloop (raw streams, no httpx:
httpx costs more CPU per request than the server does). It shares the machine's two cores
with the server: by default the server is pinned to CPU 0 (``taskset -c 0``) and the
generator to CPU 1, so neither steals the other's core; ``--no-pin`` lets the kernel
schedule both (then the generator competes with the server's SQLite threads). Latency is
per request, from write to the last body byte; the percentiles are nearest-rank.

Closed loops measure saturation: by Little's law a closed loop of N clients has a mean
latency of N / throughput, so 200 clients under 25 ms would need 8,000+ answers/s from one
core, more than a bare FastAPI endpoint gives here. The open-loop phases measure latency at a
given load instead, which is what a service-level target means: ``submit-paced``
(``--paced-submit-rate``, default 1,000 submits/s over the 100 clients) and ``status-paced``
(``--paced-status-rate``, default 2,000 reads/s over the 200 clients: each polls every
100 ms), faena and bare FastAPI alike. A paced request's latency runs from when it was due,
so a slow answer that delays the next send is counted (no coordinated omission).

Prints one JSON line per phase, then a summary line with the targets (submit p95 <= 50 ms,
status p99 <= 25 ms) and the faena / bare request-rate ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from bench.faena_embedded import (
    REPO_ROOT,
    CpuMeter,
    FaenaServer,
    bench_lock,
    faena_version,
    read_http_response,
    wait_quiet,
)
from bench.peers._common import percentile

SUBMIT_TARGET_P95_MS = 50.0
STATUS_TARGET_P99_MS = 25.0

BARE_APP = """
import sys
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/v1/jobs", status_code=201)
async def submit(request: Request):
    body = await request.json()
    return JSONResponse({"id": "0", "kind": body.get("kind"), "state": "queued"}, 201)


@app.get("/v1/jobs/{job_id}")
async def get(job_id: str):
    return {"id": job_id, "kind": "noop", "state": "succeeded"}


config = uvicorn.Config(app, host="127.0.0.1", port=0, loop="uvloop", lifespan="off",
                        log_level="warning", access_log=False, server_header=False)
server = uvicorn.Server(config)
sock = __import__("socket").socket()
sock.bind(("127.0.0.1", 0))
print("API", f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
server.run(sockets=[sock])
"""


class BareServer:
    """The bare FastAPI app in a subprocess (same uvicorn settings as faena's)."""

    def __init__(self, cpus: str | None) -> None:
        self.cpus = cpus
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> BareServer:
        cmd = [sys.executable, "-c", BARE_APP]
        if self.cpus:
            cmd = ["taskset", "-c", self.cpus, *cmd]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, text=True, start_new_session=True, cwd=REPO_ROOT
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if len(line) < 2 or line[0] != "API":
            raise RuntimeError(f"bare server did not start: {line}")
        self.url = line[1]
        time.sleep(0.3)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# --------------------------------------------------------------------------- load generator


async def _read_response(reader: asyncio.StreamReader) -> int:
    status, _ = await read_http_response(reader)
    return status


async def _client(
    host: str,
    port: int,
    *,
    next_request: Callable[[], bytes],
    record_from: float,
    until: float,
    lat: list[float],
    statuses: Counter[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            t = time.perf_counter()
            if t >= until:
                return
            writer.write(next_request())
            status = await _read_response(reader)
            done = time.perf_counter()
            if t >= record_from:
                lat.append(done - t)
                statuses[status] += 1
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _paced_client(
    host: str,
    port: int,
    *,
    next_request: Callable[[], bytes],
    interval_s: float,
    offset_s: float,
    record_from: float,
    until: float,
    lat: list[float],
    statuses: Counter[int],
) -> None:
    """One request every ``interval_s`` on its own connection, latency counted from when the
    request was *due* (no coordinated omission: a slow answer delays the next send, and that
    delay is in the next request's latency)."""
    reader, writer = await asyncio.open_connection(host, port)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    due = time.perf_counter() + offset_s
    try:
        while due < until:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(next_request())
            status = await _read_response(reader)
            done = time.perf_counter()
            if due >= record_from:
                lat.append(done - due)
                statuses[status] += 1
            due += interval_s
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def load(
    url: str,
    clients: int,
    *,
    make_request: Callable[[int], Callable[[], bytes]],
    warmup_s: float,
    seconds: float,
    pid: int,
    rate: float | None = None,
) -> dict[str, Any]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lat: list[float] = []
    statuses: Counter[int] = Counter()
    start = time.perf_counter()
    record_from = start + warmup_s
    until = record_from + seconds
    meter: CpuMeter | None = None

    async def mark_cpu() -> None:
        nonlocal meter
        await asyncio.sleep(max(0.0, record_from - time.perf_counter()))
        meter = CpuMeter(pid)

    marker = asyncio.create_task(mark_cpu())
    if rate is None:  # closed loop: every client sends again as soon as it has its answer
        clients_done = [
            _client(
                host,
                port,
                next_request=make_request(i),
                record_from=record_from,
                until=until,
                lat=lat,
                statuses=statuses,
            )
            for i in range(clients)
        ]
    else:  # open loop: ``rate`` requests/s in all, spread evenly over the clients
        interval = clients / rate
        clients_done = [
            _paced_client(
                host,
                port,
                next_request=make_request(i),
                interval_s=interval,
                offset_s=interval * i / clients,
                record_from=record_from,
                until=until,
                lat=lat,
                statuses=statuses,
            )
            for i in range(clients)
        ]
    await asyncio.gather(*clients_done)
    await marker
    assert meter is not None
    cpu = meter.read()
    lat.sort()
    ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
    return {
        "clients": clients,
        "offered_rate": rate,
        "seconds": seconds,
        "requests": len(lat),
        "req_per_s": round(len(lat) / seconds, 1),
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "p50_ms": round(percentile(lat, 50) * 1000, 2),
        "p95_ms": round(percentile(lat, 95) * 1000, 2),
        "p99_ms": round(percentile(lat, 99) * 1000, 2),
        "max_ms": round(lat[-1] * 1000, 2) if lat else None,
        **cpu,
    }


def _request(method: str, path: str, host: str, headers: str = "", body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{headers}"
    if body or method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


# --------------------------------------------------------------------------- phases


async def run_phases(opts: argparse.Namespace) -> list[dict[str, Any]]:
    server_cpus = None if opts.no_pin else "0"
    results: list[dict[str, Any]] = []
    body = b'{"kind":"noop"}'

    async def phase(
        url: str,
        clients: int,
        make_request: Callable[[int], Callable[[], bytes]],
        pid: int,
        rate: float | None = None,
    ) -> dict[str, Any]:
        return await load(
            url,
            clients,
            make_request=make_request,
            warmup_s=opts.warmup,
            seconds=opts.seconds,
            pid=pid,
            rate=rate,
        )

    def emit(name: str, target: str, row: dict[str, Any]) -> None:
        line = {"system": target, "scenario": f"api-{name}", **row}
        results.append(line)
        print(json.dumps(line), flush=True)

    # faena: a throwaway dir, fresh SQLite, default local pool (100 slots).
    server = FaenaServer(cpus=server_cpus)
    try:
        await asyncio.to_thread(server.start)
        host = urlsplit(server.url).netloc
        auth = f"Authorization: Bearer {server.key}\r\n"
        submit_req = _request("POST", "/v1/jobs", host, auth, body)
        emit(
            "submit",
            "faena",
            await phase(server.url, opts.submit_clients, lambda i: lambda: submit_req, server.pid),
        )
        ids = await _create_jobs(server, 1000)
        gets = [_request("GET", f"/v1/jobs/{job_id}", host, auth) for job_id in ids]

        def rotating(i: int) -> Callable[[], bytes]:
            k = i * 7

            def nxt() -> bytes:
                nonlocal k
                k += 1
                return gets[k % len(gets)]

            return nxt

        emit(
            "status",
            "faena",
            await phase(server.url, opts.status_clients, rotating, server.pid),
        )
        results[-1]["rss_mb"] = server.memory()["rss_mb"]
        if opts.paced_submit_rate > 0:
            emit(
                "submit-paced",
                "faena",
                await phase(
                    server.url,
                    opts.submit_clients,
                    lambda i: lambda: submit_req,
                    server.pid,
                    rate=opts.paced_submit_rate,
                ),
            )
        if opts.paced_status_rate > 0:
            emit(
                "status-paced",
                "faena",
                await phase(
                    server.url,
                    opts.status_clients,
                    rotating,
                    server.pid,
                    rate=opts.paced_status_rate,
                ),
            )
    finally:
        await asyncio.to_thread(server.cleanup)

    with BareServer(server_cpus) as bare:
        host = urlsplit(bare.url).netloc
        post_req = _request("POST", "/v1/jobs", host, "", body)
        emit(
            "submit",
            "bare-fastapi",
            await phase(bare.url, opts.submit_clients, lambda i: lambda: post_req, bare.pid),
        )
        get_req = _request("GET", "/v1/jobs/0190000000000000000000000000abcd", host)
        emit(
            "status",
            "bare-fastapi",
            await phase(bare.url, opts.status_clients, lambda i: lambda: get_req, bare.pid),
        )
        if opts.paced_status_rate > 0:
            emit(
                "status-paced",
                "bare-fastapi",
                await phase(
                    bare.url,
                    opts.status_clients,
                    lambda i: lambda: get_req,
                    bare.pid,
                    rate=opts.paced_status_rate,
                ),
            )
    return results


async def _create_jobs(server: FaenaServer, n: int) -> list[str]:
    import httpx

    ids: list[str] = []
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=60
    ) as c:
        for start in range(0, n, 500):
            r = await c.post("/v1/jobs/batch", json=[{"kind": "noop"}] * min(500, n - start))
            r.raise_for_status()
            ids += [j["id"] for j in r.json()]
    return ids


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="recorded seconds per phase")
    p.add_argument("--warmup", type=float, default=1.0, help="unrecorded seconds per phase")
    p.add_argument("--submit-clients", type=int, default=100)
    p.add_argument("--status-clients", type=int, default=200)
    p.add_argument(
        "--no-pin", action="store_true", help="do not pin server (CPU 0) and generator (CPU 1)"
    )
    p.add_argument(
        "--paced-submit-rate",
        type=float,
        default=1000.0,
        help="open-loop phase: submits/s in all over the submit clients (0: skip)",
    )
    p.add_argument(
        "--paced-status-rate",
        type=float,
        default=2000.0,
        help="open-loop phase: status reads/s in all over the status clients (0: skip)",
    )
    opts = p.parse_args(argv)
    bench_lock()
    quiet = wait_quiet()
    if not opts.no_pin:
        os.sched_setaffinity(0, {1})
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover
        runner = asyncio.Runner()
    with runner:
        results = runner.run(run_phases(opts))
    by = {(r["system"], r["scenario"]): r for r in results}
    fs, fg = by[("faena", "api-submit")], by[("faena", "api-status")]
    bs, bg = by[("bare-fastapi", "api-submit")], by[("bare-fastapi", "api-status")]
    summary = {
        "system": "faena",
        "scenario": "api-summary",
        "pinned": not opts.no_pin,
        "submit_p95_ms": fs["p95_ms"],
        "submit_req_per_s": fs["req_per_s"],
        "status_p99_ms": fg["p99_ms"],
        "status_req_per_s": fg["req_per_s"],
        "submit_vs_bare_req_per_s": round(fs["req_per_s"] / bs["req_per_s"], 3),
        "status_vs_bare_req_per_s": round(fg["req_per_s"] / bg["req_per_s"], 3),
        "meets_targets": fs["p95_ms"] <= SUBMIT_TARGET_P95_MS
        and fg["p99_ms"] <= STATUS_TARGET_P99_MS,
        "paced": {
            name: {"rate": row["offered_rate"], "p95_ms": row["p95_ms"], "p99_ms": row["p99_ms"]}
            for (system, name), row in by.items()
            if name.endswith("-paced")
            for name in [f"{system}:{name}"]
        },
        "targets": {"submit_p95_ms": SUBMIT_TARGET_P95_MS, "status_p99_ms": STATUS_TARGET_P99_MS},
        "version": faena_version(),
        "machine": quiet,
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
