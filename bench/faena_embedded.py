"""faena in embedded mode (``faena up``: API, scheduler and local pool in one process) on a
fresh SQLite file, driven through its HTTP API like a user would. Prints one JSON line in
the shape of the peers (``bench/peers/_common.py``)::

    python -m bench.faena_embedded throughput --jobs 20000 [--batch 500] [--submitters 4]
    python -m bench.faena_embedded latency --rate 200 --seconds 10

throughput
    ``faena up`` starts in a temp dir and is ready (``/readyz`` 200) before the clock starts.
    ``--submitters`` concurrent keep-alive connections send the jobs as ``POST /v1/jobs/batch``
    bodies of ``--batch`` ``noop`` jobs (bodies encoded before the clock starts) while the
    pool is already running them. The clock runs from the first submit until ``GET
    /v1/stats`` (polled every 20 ms) says every job has succeeded. Unlike the peers (which
    enqueue everything first and then time the drain), faena's ``seconds`` *include* the
    submission; ``enqueue_s`` is the submit-only time (first submit to last 201).
latency
    ``faena up --import bench.faena_tasks``; 40 warm-up jobs, 0.5 s idle, then an open loop of
    ``--rate`` jobs/s, each a single ``POST /v1/jobs`` on one keep-alive httpx connection,
    carrying ``time.time()`` taken just before the request; the ``probe`` task's first line
    records the delay (the same ``record()`` the peers use).

Both report the server's resident memory (VmRSS, and the high-water mark VmHWM). ``--profile
FILE`` attaches ``py-spy record`` to the server for the measured phase (needs py-spy in the
venv). ``bench/faena_postgres.py`` runs the same driver against PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.peers._common import (
    IDLE_BEFORE_LOAD_S,
    OUT_DIR_ENV,
    REPO_ROOT,
    WARMUP_JOBS,
    bench_lock,
    latency_summary,
    percentile,
    read_lines,
)

STATS_POLL_S = 0.02
READY_TIMEOUT_S = 30.0
STOP_GRACE_S = 15.0


def faena_bin() -> str:
    path = Path(sys.executable).parent / "faena"
    return str(path) if path.exists() else "faena"


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of ``pid`` in MB (empty if the process is gone)."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds the process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds all processes on this machine have used so far (/proc/stat, all cores)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_quiet(max_wait_s: float | None = None, threshold: float = 0.15) -> dict[str, float]:
    """Wait (up to ``max_wait_s``, default ``$BENCH_QUIET_WAIT`` or 0) until the machine's
    CPU use over half a second is below ``threshold`` of all cores; report what was seen."""
    if max_wait_s is None:
        max_wait_s = float(os.environ.get("BENCH_QUIET_WAIT", "0") or 0)
    start = time.perf_counter()
    while True:
        b0, t0 = machine_busy_s(), time.perf_counter()
        time.sleep(0.5)
        util = (machine_busy_s() - b0) / (time.perf_counter() - t0) / (os.cpu_count() or 1)
        waited = time.perf_counter() - start
        if util < threshold or waited >= max_wait_s:
            return {"util_before": round(util, 3), "quiet_wait_s": round(waited, 1)}
        time.sleep(1.0)


class CpuMeter:
    """CPU used during a phase by the server, by this driver, and by everything else on the
    machine (``other_cpu_s``: other people's tests, PostgreSQL's background work, ...). A run
    with a large ``other_cpu_s`` shared the two cores and should not be trusted."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.t0 = time.perf_counter()
        self.server0 = cpu_seconds(pid) or 0.0
        self.self0 = time.process_time()
        self.busy0 = machine_busy_s()

    def read(self) -> dict[str, float]:
        server = (cpu_seconds(self.pid) or self.server0) - self.server0
        driver = time.process_time() - self.self0
        busy = machine_busy_s() - self.busy0
        wall = time.perf_counter() - self.t0
        return {
            "server_cpu_s": round(server, 2),
            "driver_cpu_s": round(driver, 2),
            "other_cpu_s": round(max(0.0, busy - server - driver), 2),
            "machine_cpu_util": round(busy / wall / (os.cpu_count() or 1), 3),
        }


class FaenaServer:
    """``faena up`` (or ``faena server``) as a subprocess in its own temp dir and session."""

    def __init__(
        self,
        *,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        database_url: str | None = None,
        command: str = "up",
        cpus: str | None = None,
        home: str | None = None,
        key: str | None = None,
    ) -> None:
        self.args = args or []
        self.extra_env = env or {}
        self.database_url = database_url
        self.command = command
        self.cpus = cpus
        self.key = key or "fk_bench_" + secrets.token_hex(16)
        self.home = home or tempfile.mkdtemp(prefix="bench-faena-")
        self.log_path = os.path.join(self.home, "server.log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.spawned_at = 0.0  # perf_counter just before the spawn
        self.announced_at = 0.0  # perf_counter when the API line was read

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def spawn(self) -> None:
        env = dict(os.environ)
        env.update(self.extra_env)
        env["FAENA_BOOTSTRAP_KEY"] = self.key
        env.setdefault("FAENA_LOG_FORMAT", "json")
        # Rate limits stay on (their cost is measured) but far above what one client sends.
        for limit in ("RATE_LIMIT", "RATE_LIMIT_BULK", "RATE_LIMIT_HEALTH"):
            env.setdefault(f"FAENA_{limit}", "10000000")
        # BENCH_FAENA_SRC: measure another checkout's src/ (e.g. a `git archive` of a commit)
        # with this venv's dependencies, while the work tree is mid-edit.
        src = os.environ.get("BENCH_FAENA_SRC", "")
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (src, str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        if self.database_url:
            env["FAENA_DATABASE_URL"] = self.database_url
        else:
            env.pop("FAENA_DATABASE_URL", None)
        cmd = [faena_bin(), self.command, "--port", "0", *self.args]
        if self.cpus:
            cmd = ["taskset", "-c", self.cpus, *cmd]
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child from here on
        self.spawned_at = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.home,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
        log.close()

    def wait_announced(self, timeout: float = READY_TIMEOUT_S) -> str:
        """Read stdout until the line starting with "API" gives the URL."""
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        buf = b""
        try:
            while time.monotonic() < deadline:
                if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    break
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                buf += chunk
                for line in buf.decode(errors="replace").splitlines():
                    parts = line.split()
                    if len(parts) >= 2 and parts[0] == "API":
                        self.url = parts[1]
                        self.announced_at = time.perf_counter()
                        return self.url
        finally:
            sel.close()
        raise RuntimeError(
            f"faena {self.command} did not announce its URL; log:\n{self.log_tail()}"
        )

    def wait_ready(self, timeout: float = READY_TIMEOUT_S, poll_s: float = 0.005) -> float:
        """Poll /readyz until 200; returns perf_counter at that moment. (http.client, not
        httpx: creating an httpx client costs tens of ms, which a cold start must not count.)"""
        if not self.url:
            self.wait_announced(timeout)
        parts = urlsplit(self.url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
            try:
                conn.request("GET", "/readyz")
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    return time.perf_counter()
            except OSError:
                pass
            finally:
                conn.close()
            self.check_alive()
            time.sleep(poll_s)
        raise TimeoutError(f"faena not ready within {timeout} s; log:\n{self.log_tail()}")

    def start(self) -> FaenaServer:
        self.spawn()
        self.wait_announced()
        self.wait_ready()
        return self

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"faena exited early with code {self.proc.returncode}; log:\n{self.log_tail()}"
            )

    def log_tail(self, n: int = 3000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def memory(self) -> dict[str, float]:
        s = proc_status(self.pid)
        return {"rss_mb": s.get("VmRSS", math.nan), "hwm_mb": s.get("VmHWM", math.nan)}

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        if os.environ.get("BENCH_KEEP_TMP"):
            print(f"kept {self.home}", file=sys.stderr)
        else:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> FaenaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


class Profiler:
    """``py-spy record`` attached to a pid until :meth:`stop` (SIGINT writes the file)."""

    def __init__(self, pid: int, path: str | None, rate: int = 250) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        if not path:
            return
        py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
        fmt = "speedscope" if path.endswith(".json") else "raw" if path.endswith(".txt") else None
        cmd = [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(rate),
            "-o",
            path,
            "--nonblocking",
        ]
        if fmt:
            cmd += ["--format", fmt]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        time.sleep(0.3)  # attach before the measured phase

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        if self.proc.returncode not in (0, -signal.SIGINT):
            print(err.decode(errors="replace")[-800:], file=sys.stderr)
        self.proc = None


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _client(url: str, key: str, connections: int) -> Any:
    import httpx

    return httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        timeout=60.0,
    )


async def read_http_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 answer off a keep-alive stream: its status and its Content-Length body
    (what faena and uvicorn send; a chunked answer is refused)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname == b"content-length":
            length = int(value)
        elif lname == b"transfer-encoding":
            raise RuntimeError("chunked answers are not read by this client")
    return status, await reader.readexactly(length) if length else b""


class RawHttp:
    """Keep-alive HTTP/1.1 POSTs on asyncio streams, for the latency scenario's open loop.

    httpx costs about 1.7 ms of CPU per request here, as much as the server spends on the
    job: on two cores that CPU is taken from the server and the database while they work,
    and it lies between the timestamp and the bytes on the wire. The peers enqueue with
    their own (cheap) clients; this client costs a few tens of microseconds, so the figure
    is faena's. It speaks just what faena answers: a status line, headers, a
    Content-Length body (``--client httpx`` measures with httpx instead)."""

    def __init__(self, url: str, key: str, connections: int) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.head = (
            f"Host: {self.host}:{self.port}\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\n"
        ).encode()
        self.limit = connections
        self.opened = 0
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self.all: list[asyncio.StreamWriter] = []

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle.empty() and self.opened < self.limit:
            self.opened += 1
            reader, writer = await asyncio.open_connection(self.host, self.port)
            self.all.append(writer)
            return reader, writer
        return await self.idle.get()

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        reader, writer = await self._connection()
        writer.write(
            b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s"
            % (path.encode(), self.head, len(body), body)
        )
        answer = await read_http_response(reader)
        self.idle.put_nowait((reader, writer))
        return answer

    async def close(self) -> None:
        for writer in self.all:
            writer.close()
        for writer in self.all:
            with contextlib.suppress(OSError):
                await writer.wait_closed()


# --------------------------------------------------------------------------- throughput


async def _until_all_succeeded(
    client: Any,
    server: FaenaServer,
    n: int,
    *,
    deadline: float,
    timeout: float,
    each_poll: Callable[[], None] = lambda: None,
) -> tuple[float, int, float, int]:
    """Poll ``GET /v1/stats`` every 20 ms until ``n`` jobs succeeded (any failed or cancelled
    job is an error; so is ``deadline``). ``each_poll`` runs before every poll. Returns when
    the first job was seen done, how many were done then, when all were, and the polls made."""
    t_first: float | None = None
    done_first = polls = 0
    while True:
        each_poll()
        r = await client.get("/v1/stats")
        now = time.perf_counter()
        polls += 1
        by_state = r.json()["by_state"]
        done = by_state.get("succeeded", 0)
        if by_state.get("failed") or by_state.get("cancelled"):
            raise RuntimeError(f"jobs did not succeed: {by_state}")
        if t_first is None and done > 0:
            t_first, done_first = now, done
        if done >= n:
            assert t_first is not None
            return t_first, done_first, now, polls
        if now > deadline:
            raise TimeoutError(f"only {done}/{n} jobs succeeded within {timeout} s")
        if polls % 50 == 0:
            server.check_alive()
        await asyncio.sleep(STATS_POLL_S)


def _rates(
    n: int, t0: float, drained: tuple[float, int, float, int], enqueue_s: float
) -> dict[str, Any]:
    """The throughput figures every system reports (``bench/peers/_common.py``), from the
    clock's start ``t0`` and what :func:`_until_all_succeeded` returned."""
    t_first, done_first, t_end, _ = drained
    seconds = t_end - t0
    steady = (n - done_first) / (t_end - t_first) if t_end > t_first else math.nan
    return {
        "jobs": n,
        "seconds": round(seconds, 4),
        "jobs_per_s": round(n / seconds, 1),
        "enqueue_s": round(enqueue_s, 4),
        "enqueue_jobs_per_s": round(n / enqueue_s, 1),
        "startup_s": round(t_first - t0, 4),
        "steady_jobs_per_s": round(steady, 1),
    }


async def _prefill(database_url: str, opts: argparse.Namespace) -> float:
    """``--prefill``: the N jobs written with faena's own bulk enqueue (its store's
    ``submit_many``, 5,000 a transaction) before anything runs, untimed, as the peers enqueue
    with their libraries' bulk calls; the seconds it took."""
    from faena.bootstrap import open_store
    from faena.config import Settings
    from faena.domain.ids import new_ids
    from faena.domain.jobs import JobSpec
    from faena.ports.store import SubmitParams

    store = open_store(Settings(database_url=database_url))
    await store.open()
    try:
        t0 = time.perf_counter()
        left = opts.jobs
        while left > 0:
            k = min(5_000, left)
            specs = [JobSpec(kind="noop")] * k
            await store.submit_many(SubmitParams(specs, new_ids(k), time.time()))
            left -= k
        return time.perf_counter() - t0
    finally:
        await store.close()


async def _drain(server: FaenaServer, opts: argparse.Namespace, enqueue_s: float) -> dict[str, Any]:
    """``--prefill``: the peers' clock. ``server`` (``faena up``, just spawned on the filled
    database) is timed from its spawn until ``GET /v1/stats`` says every job succeeded."""
    n = opts.jobs
    t0 = server.spawned_at
    server.wait_ready()
    profiler = Profiler(server.pid, opts.profile)
    meter = CpuMeter(server.pid)
    async with _client(server.url, server.key, 1) as client:
        try:
            drained = await _until_all_succeeded(
                client, server, n, deadline=t0 + opts.timeout, timeout=opts.timeout
            )
            cpu = meter.read()
        finally:
            profiler.stop()
    mem_end = server.memory()
    return {
        **_rates(n, t0, drained, enqueue_s),
        "stats_polls": drained[3],
        **cpu,
        "rss_end_mb": mem_end["rss_mb"],
        "rss_peak_mb": mem_end["hwm_mb"],
    }


async def _throughput(server: FaenaServer, opts: argparse.Namespace) -> dict[str, Any]:
    n, size = opts.jobs, opts.batch
    body = json.dumps([{"kind": "noop"} for _ in range(size)]).encode()
    sizes = [size] * (n // size) + ([n % size] if n % size else [])
    bodies = [body if k == size else json.dumps([{"kind": "noop"}] * k).encode() for k in sizes]
    mem_idle = server.memory()
    async with _client(server.url, server.key, opts.submitters + 1) as client:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        for b in bodies:
            queue.put_nowait(b)
        submit_ms: list[float] = []

        async def submitter() -> None:
            while not queue.empty():
                b = queue.get_nowait()
                t = time.perf_counter()
                r = await client.post("/v1/jobs/batch", content=b)
                submit_ms.append((time.perf_counter() - t) * 1000)
                if r.status_code != 201:
                    raise RuntimeError(f"batch submit: HTTP {r.status_code}: {r.text[:300]}")

        profiler = Profiler(server.pid, opts.profile)
        meter = CpuMeter(server.pid)
        t0 = time.perf_counter()
        try:
            submitters = [asyncio.create_task(submitter()) for _ in range(opts.submitters)]
            t_submitted: float | None = None

            def note_submitted() -> None:
                nonlocal t_submitted
                if t_submitted is None and all(s.done() for s in submitters):
                    for s in submitters:
                        s.result()  # raise a submit failure
                    t_submitted = time.perf_counter()

            drained = await _until_all_succeeded(
                client,
                server,
                n,
                deadline=t0 + opts.timeout,
                timeout=opts.timeout,
                each_poll=note_submitted,
            )
            if t_submitted is None:
                await asyncio.gather(*submitters)
                t_submitted = time.perf_counter()
            cpu = meter.read()
        finally:
            profiler.stop()
    mem_end = server.memory()
    submit_ms.sort()
    return {
        **_rates(n, t0, drained, t_submitted - t0),
        "settle_s": round(max(0.0, drained[2] - t_submitted), 4),
        "batch_submit_p50_ms": round(percentile(submit_ms, 50), 2),
        "batch_submit_max_ms": round(submit_ms[-1], 2),
        "stats_polls": drained[3],
        **cpu,
        "rss_idle_mb": mem_idle["rss_mb"],
        "rss_end_mb": mem_end["rss_mb"],
        "rss_peak_mb": mem_end["hwm_mb"],
    }


# --------------------------------------------------------------------------- latency


async def _latency(server: FaenaServer, opts: argparse.Namespace, out_dir: str) -> dict[str, Any]:
    rate, duration = opts.rate, opts.seconds
    if rate == int(rate):
        rate = int(rate)
    n = round(rate * duration)
    mem_idle = server.memory()
    raw = RawHttp(server.url, server.key, opts.connections) if opts.client == "raw" else None
    async with _client(server.url, server.key, opts.connections) as client:

        async def submit(enqueued_at: float) -> None:
            body = b'{"kind":"probe","payload":{"enqueued_at":%.7f}}' % enqueued_at
            if raw is not None:
                status, text = await raw.post("/v1/jobs", body)
            else:
                r = await client.post("/v1/jobs", content=body)
                status, text = r.status_code, r.content
            if status != 201:
                raise RuntimeError(f"submit: HTTP {status}: {text[:300]!r}")

        start_deadline = time.perf_counter() + opts.start_timeout
        for _ in range(WARMUP_JOBS):
            await submit(-1.0)
            await asyncio.sleep(0.005)
        while read_lines(out_dir)[0] < WARMUP_JOBS:
            if time.perf_counter() > start_deadline:
                server.check_alive()
                raise TimeoutError(f"warm-up jobs did not run within {opts.start_timeout} s")
            await asyncio.sleep(0.01)
        await asyncio.sleep(IDLE_BEFORE_LOAD_S)
        server.check_alive()

        profiler = Profiler(server.pid, opts.profile, rate=500)
        meter = CpuMeter(server.pid)
        try:
            submit_s: list[float] = []

            async def timed_submit() -> None:
                enqueued_at = time.time()
                await submit(enqueued_at)
                submit_s.append(time.time() - enqueued_at)

            # Open loop: job i is sent at t0 + i/rate on its own task, whether or not the
            # requests before it have been answered (up to --connections at once).
            inflight: set[asyncio.Task[None]] = set()
            t0 = time.perf_counter()
            for i in range(n):
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(timed_submit())
                inflight.add(task)
                task.add_done_callback(inflight.discard)
            sent_s = time.perf_counter() - t0
            if inflight:
                await asyncio.gather(*inflight)
            deadline = time.perf_counter() + opts.drain_timeout
            while True:
                _, lat = read_lines(out_dir)
                if len(lat) >= n:
                    break
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"only {len(lat)}/{n} latency jobs ran")
                await asyncio.sleep(0.02)
            cpu = meter.read()
        finally:
            profiler.stop()
            if raw is not None:
                await raw.close()
    mem_end = server.memory()
    return {
        **latency_summary(lat, submit_s, rate=rate, duration=duration, n=n, sent_s=sent_s),
        **cpu,
        "rss_idle_mb": mem_idle["rss_mb"],
        "rss_end_mb": mem_end["rss_mb"],
        "rss_peak_mb": mem_end["hwm_mb"],
    }


# --------------------------------------------------------------------------- CLI


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="scenario", required=True)
    tp = sub.add_parser(
        "throughput", help="submit N noop jobs in batches, time until all succeeded"
    )
    tp.add_argument("--jobs", type=int, default=20_000)
    tp.add_argument("--batch", type=int, default=500, help="jobs per POST /v1/jobs/batch")
    tp.add_argument("--submitters", type=int, default=4, help="concurrent batch submitters")
    tp.add_argument("--timeout", type=float, default=300.0, help="bound on the run (s)")
    tp.add_argument(
        "--prefill",
        action="store_true",
        help="the peers' clock: submit every job to a `faena server` without a pool first "
        "(untimed), then time a fresh `faena up` from its spawn until all succeeded",
    )
    lt = sub.add_parser("latency", help="open-loop load of R single jobs/s for S seconds")
    lt.add_argument("--rate", type=float, default=200.0)
    lt.add_argument("--seconds", type=float, default=10.0)
    lt.add_argument("--start-timeout", type=float, default=60.0)
    lt.add_argument("--drain-timeout", type=float, default=60.0)
    lt.add_argument(
        "--connections", type=int, default=8, help="keep-alive connections for the open loop"
    )
    lt.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="HTTP client of the open loop: raw (asyncio streams, default) or httpx",
    )
    for p in (tp, lt):
        p.add_argument(
            "--workers", type=int, default=None, help="local pool slots (faena up default: 100)"
        )
        p.add_argument("--profile", default=None, help="py-spy output (.svg, .json, .txt)")
        p.add_argument("--database-url", default=None, help="store URL (default: fresh SQLite)")
        p.add_argument("--cpus", default=None, help="pin the server with taskset -c CPUS")
    return parser


def faena_version() -> str:
    from importlib.metadata import version

    return version("faena")


def _measure(
    opts: argparse.Namespace,
    args: list[str],
    database_url: str | None,
    out_dir: str,
    servers: list[FaenaServer],
) -> dict[str, Any]:
    """Start the server(s) the scenario needs (listed in ``servers``) and measure."""
    env = {OUT_DIR_ENV: out_dir}
    if opts.scenario == "throughput" and opts.prefill:
        server = FaenaServer(args=args, env=env, database_url=database_url, cpus=opts.cpus)
        servers.append(server)
        url = database_url or f"sqlite:///{server.home}/.faena/faena.db"  # where `up` looks
        enqueue_s = asyncio.run(_prefill(url, opts))
        server.spawn()
        server.wait_announced()
        return asyncio.run(_drain(server, opts, enqueue_s))
    server = FaenaServer(args=args, env=env, database_url=database_url, cpus=opts.cpus)
    servers.append(server)
    server.start()
    if opts.scenario == "throughput":
        return asyncio.run(_throughput(server, opts))
    return asyncio.run(_latency(server, opts, out_dir))


def run(
    system: str,
    argv: list[str] | None = None,
    *,
    prepare: Callable[[argparse.Namespace], str | None] | None = None,
) -> int:
    """Run one scenario and print its JSON line. ``prepare`` returns the database URL to use
    (and e.g. recreates the database); None means faena's default SQLite file."""
    opts = build_parser(f"python -m bench.{system.replace('-', '_')}").parse_args(argv)

    def on_term(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    head: dict[str, Any] = {"system": system, "scenario": opts.scenario}
    servers: list[FaenaServer] = []  # stopped and removed at the end, whatever happened
    out_dir = tempfile.mkdtemp(prefix=f"bench-{system}-out-")
    try:
        head["version"] = faena_version()
        bench_lock()
        database_url = opts.database_url or (prepare(opts) if prepare else None)
        args: list[str] = []
        if opts.workers is not None:
            args += ["--workers", str(opts.workers)]
        if opts.scenario == "latency":
            args += ["--import", "bench.faena_tasks"]
        head["config"] = {
            "mode": "faena up (API + pool in one process)",
            "store": (database_url or "sqlite (fresh file)").split("@")[-1],
            "workers": opts.workers or "default (100)",
            "client": (
                "httpx keep-alive, same process as the driver"
                if opts.scenario == "throughput" or opts.client == "httpx"
                else "HTTP/1.1 keep-alive on asyncio streams (RawHttp), same process"
            ),
            "faena_src": os.environ.get("BENCH_FAENA_SRC") or "installed (work tree)",
        }
        if opts.scenario == "throughput":
            head["config"].update(
                batch=opts.batch,
                submitters=opts.submitters,
                timed=(
                    "`faena up` spawn -> GET /v1/stats says all succeeded (jobs submitted "
                    "before, untimed, like the peers)"
                    if opts.prefill
                    else "first submit -> GET /v1/stats says all succeeded (includes submission)"
                ),
            )
        else:
            head["config"].update(
                task="bench.faena_tasks.probe (async def)",
                open_loop=f"one task per job, up to {opts.connections} keep-alive connections",
            )
        head["machine"] = wait_quiet()
        body = _measure(opts, args, database_url, out_dir, servers)
    except BaseException as exc:
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            raise
        print(f"{system} {opts.scenario} failed: {exc}"[-3000:], file=sys.stderr)
        head["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        print(json.dumps(head), flush=True)
        return 1
    finally:
        for server in servers:
            server.cleanup()
        shutil.rmtree(out_dir, ignore_errors=True)
    first = {"system": system, "scenario": opts.scenario}
    if opts.scenario == "throughput":
        first.update({k: body[k] for k in ("jobs", "seconds", "jobs_per_s")})
    else:
        first.update({k: body[k] for k in ("rate", "n", "p50_ms", "p95_ms", "p99_ms", "max_ms")})
    print(json.dumps({**first, **body, **head}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run("faena"))
