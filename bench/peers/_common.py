"""Shared driver for the peer benchmarks: CLI, worker processes, measurement, JSON output.

A peer module subclasses :class:`Peer` and calls :func:`main`. The driver (this process)
enqueues the jobs; the peer's workers run as subprocesses started and stopped here.

Measurement is the same for every peer: the no-op task body calls :func:`record` on its
first line, which appends to a file of its own worker process (one ``os.write`` on an
``O_APPEND`` descriptor, about a microsecond, no network round trip):

* throughput jobs carry ``enqueued_at == 0`` and write one byte, so the driver knows how
  many bodies have run by adding up file sizes (a ``stat`` per worker, every 2 ms);
* latency jobs carry ``time.time()`` taken just before the enqueue call and write
  ``time.time() - enqueued_at`` as a text line;
* warm-up jobs carry ``enqueued_at < 0`` and write ``w``; they are not counted.

This module imports only the standard library at top level: worker processes import it.
"""

from __future__ import annotations

import abc
import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
OUT_DIR_ENV = "BENCH_OUT_DIR"

PG_BASE_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432")
PG_ADMIN_DB = os.environ.get("BENCH_PG_ADMIN_DB", "postgres")
REDIS_HOST = os.environ.get("BENCH_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("BENCH_REDIS_PORT", "6379"))

POLL_S = 0.002  # driver poll period while waiting for task bodies
WARMUP_JOBS = 40  # latency: jobs sent one by one before the measured load
IDLE_BEFORE_LOAD_S = 0.5  # latency: workers sit idle this long before the load starts
STOP_GRACE_S = 10.0  # SIGTERM, then SIGKILL after this long

# --------------------------------------------------------------------------- task side

_out: dict[int, int] = {}  # pid -> descriptor of that process's output file


def record(enqueued_at: float) -> None:
    """First line of every benchmark task body. Cheap: one write(2), no network."""
    now = time.time()
    pid = os.getpid()
    fd = _out.get(pid)
    if fd is None:  # lazily, per process (prefork children included)
        path = os.path.join(os.environ[OUT_DIR_ENV], f"{pid}.out")
        fd = _out[pid] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    if enqueued_at == 0:
        os.write(fd, b"x")
    elif enqueued_at < 0:
        os.write(fd, b"w\n")
    else:
        os.write(fd, b"%.7f\n" % (now - enqueued_at))


def _out_files(out_dir: str) -> list[str]:
    return [os.path.join(out_dir, n) for n in os.listdir(out_dir) if n.endswith(".out")]


def count_bytes(out_dir: str) -> int:
    total = 0
    for path in _out_files(out_dir):
        with contextlib.suppress(FileNotFoundError):
            total += os.stat(path).st_size
    return total


def read_lines(out_dir: str) -> tuple[int, list[float]]:
    """(warm-up count, latencies in seconds) written so far by all workers."""
    warm = 0
    lat: list[float] = []
    for path in _out_files(out_dir):
        with open(path, "rb") as f:
            data = f.read()
        # A line being written concurrently may be incomplete: keep whole lines only.
        for line in data[: data.rfind(b"\n") + 1].splitlines():
            if line == b"w":
                warm += 1
            elif line:
                lat.append(float(line))
    return warm, lat


# --------------------------------------------------------------------------- workers


class WorkerGroup:
    """Worker subprocesses, each in its own session so the whole tree can be signalled."""

    _live: list[WorkerGroup] = []  # noqa: RUF012 - registry for the SIGTERM path

    def __init__(self, commands: list[list[str]], env: dict[str, str], log_path: str) -> None:
        self.commands = commands
        self.env = env
        self.log_path = log_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        env = dict(os.environ)
        env.update(self.env)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        env.setdefault("PYTHONUNBUFFERED", "1")
        WorkerGroup._live.append(self)
        with open(self.log_path, "ab") as log:
            for cmd in self.commands:
                self.procs.append(
                    subprocess.Popen(
                        cmd,
                        cwd=REPO_ROOT,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )

    def check_alive(self) -> None:
        for p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(
                    f"worker {p.args!r} exited early with code {p.returncode}; "
                    f"log tail:\n{self.log_tail()}"
                )

    def log_tail(self, n: int = 3000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            # The session may hold children (prefork pools) even when the leader is gone.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
        if self in WorkerGroup._live:
            WorkerGroup._live.remove(self)

    @classmethod
    def stop_all(cls) -> None:
        for group in list(cls._live):
            group.stop()


# --------------------------------------------------------------------------- peer API


class Peer(abc.ABC):
    """One peer job queue. Methods run in the driver process, inside one event loop."""

    system: str = ""
    default_workers: int = 2

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:  # noqa: B027
        """Peer-specific worker options (added to both scenarios)."""

    @abc.abstractmethod
    def version(self) -> str: ...

    @abc.abstractmethod
    def config(self, opts: argparse.Namespace) -> dict[str, Any]:
        """The worker configuration, reported in the JSON line."""

    @abc.abstractmethod
    def worker_commands(self, opts: argparse.Namespace) -> list[list[str]]: ...

    def worker_env(self, opts: argparse.Namespace) -> dict[str, str]:
        return {}

    @abc.abstractmethod
    async def open(self, opts: argparse.Namespace) -> None:
        """Connect, create the database or schema if missing."""

    @abc.abstractmethod
    async def reset(self) -> None:
        """Purge queues / truncate tables so each run starts empty."""

    @abc.abstractmethod
    async def enqueue_bulk(self, n: int) -> None:
        """Enqueue n throughput jobs (enqueued_at=0), with the peer's bulk API if it has one."""

    @abc.abstractmethod
    async def enqueue_one(self, enqueued_at: float) -> None:
        """Enqueue a single job carrying enqueued_at."""

    async def after_enqueue(self) -> None:  # noqa: B027
        """Untimed step between the bulk enqueue and the worker start (e.g. ANALYZE)."""

    async def settled(self) -> bool:
        """True once the peer's own state says every job has finished (after the bodies ran)."""
        return True

    async def close(self) -> None:  # noqa: B027
        """Release connections."""


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


async def _throughput(peer: Peer, opts: argparse.Namespace, out_dir: str) -> dict[str, Any]:
    n = opts.jobs
    await peer.reset()
    t = time.perf_counter()
    await peer.enqueue_bulk(n)
    enqueue_s = time.perf_counter() - t
    await peer.after_enqueue()

    group = WorkerGroup(
        peer.worker_commands(opts),
        {**peer.worker_env(opts), OUT_DIR_ENV: out_dir},
        os.path.join(out_dir, "workers.log"),
    )
    t0 = time.perf_counter()
    group.start()
    try:
        deadline = t0 + opts.timeout
        t_first = None
        done_first = 0
        polls = 0
        while True:
            done = count_bytes(out_dir)
            now = time.perf_counter()
            if t_first is None and done > 0:
                t_first, done_first = now, done
            if done >= n:
                t_bodies = now
                break
            if now > deadline:
                raise TimeoutError(f"only {done}/{n} jobs ran within {opts.timeout} s")
            polls += 1
            if polls % 250 == 0:
                group.check_alive()
            await asyncio.sleep(POLL_S)
        # Bodies have all run; wait for the peer's own completion state (batched acks).
        while not await peer.settled():
            if time.perf_counter() > deadline:
                raise TimeoutError("task bodies ran but the peer never reported completion")
            await asyncio.sleep(POLL_S)
        t_end = time.perf_counter()
    finally:
        group.stop()
    if count_bytes(out_dir) != n:
        raise RuntimeError(f"{count_bytes(out_dir)} task bodies ran for {n} jobs")
    seconds = t_end - t0
    assert t_first is not None
    steady = (n - done_first) / (t_bodies - t_first) if t_bodies > t_first else math.nan
    return {
        "jobs": n,
        "seconds": round(seconds, 4),
        "jobs_per_s": round(n / seconds, 1),
        "enqueue_s": round(enqueue_s, 4),
        "enqueue_jobs_per_s": round(n / enqueue_s, 1),
        "startup_s": round(t_first - t0, 4),
        "steady_jobs_per_s": round(steady, 1),
        "settle_s": round(t_end - t_bodies, 4),
    }


async def _latency(peer: Peer, opts: argparse.Namespace, out_dir: str) -> dict[str, Any]:
    rate, duration = opts.rate, opts.seconds
    if rate == int(rate):
        rate = int(rate)
    n = round(rate * duration)
    await peer.reset()
    group = WorkerGroup(
        peer.worker_commands(opts),
        {**peer.worker_env(opts), OUT_DIR_ENV: out_dir},
        os.path.join(out_dir, "workers.log"),
    )
    group.start()
    try:
        # Warm-up: workers connected, imports done, every process has run a job or so.
        start_deadline = time.perf_counter() + opts.start_timeout
        for _ in range(WARMUP_JOBS):
            await peer.enqueue_one(-1.0)
            await asyncio.sleep(0.005)
        while read_lines(out_dir)[0] < WARMUP_JOBS:
            if time.perf_counter() > start_deadline:
                group.check_alive()
                raise TimeoutError(f"warm-up jobs did not run within {opts.start_timeout} s")
            await asyncio.sleep(0.01)
        await asyncio.sleep(IDLE_BEFORE_LOAD_S)
        group.check_alive()

        # Open loop: job i is due at t0 + i/rate whatever happened to the jobs before it.
        submit: list[float] = []
        t0 = time.perf_counter()
        for i in range(n):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            enqueued_at = time.time()
            await peer.enqueue_one(enqueued_at)
            submit.append(time.time() - enqueued_at)
        sent_s = time.perf_counter() - t0

        deadline = time.perf_counter() + opts.drain_timeout
        while True:
            _, lat = read_lines(out_dir)
            if len(lat) >= n:
                break
            if time.perf_counter() > deadline:
                raise TimeoutError(f"only {len(lat)}/{n} latency jobs ran")
            await asyncio.sleep(0.02)
    finally:
        group.stop()
    return latency_summary(lat, submit, rate=rate, duration=duration, n=n, sent_s=sent_s)


def latency_summary(
    lat: list[float], submit: list[float], *, rate: float, duration: float, n: int, sent_s: float
) -> dict[str, Any]:
    """The latency scenario's figures, the same for faena and every peer (seconds in, ms out)."""
    lat.sort()
    submit.sort()
    return {
        "rate": rate,
        "duration_s": duration,
        "n": len(lat),
        "sent_s": round(sent_s, 3),
        "achieved_rate": round(n / sent_s, 1) if sent_s > 0 else None,
        "p50_ms": _ms(percentile(lat, 50)),
        "p95_ms": _ms(percentile(lat, 95)),
        "p99_ms": _ms(percentile(lat, 99)),
        "max_ms": _ms(lat[-1]),
        "mean_ms": _ms(sum(lat) / len(lat)),
        "enqueue_p50_ms": _ms(percentile(submit, 50)),
        "enqueue_p99_ms": _ms(percentile(submit, 99)),
    }


async def _drive(peer: Peer, opts: argparse.Namespace) -> dict[str, Any]:
    out_dir = tempfile.mkdtemp(prefix=f"bench-{peer.system}-")
    await peer.open(opts)
    try:
        if opts.scenario == "throughput":
            return await _throughput(peer, opts, out_dir)
        return await _latency(peer, opts, out_dir)
    finally:
        await peer.close()
        shutil.rmtree(out_dir, ignore_errors=True)


def build_parser(peer: Peer) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m bench.peers.{type(peer).__module__}")
    sub = parser.add_subparsers(dest="scenario", required=True)
    tp = sub.add_parser("throughput", help="enqueue N no-op jobs in bulk, then drain them")
    tp.add_argument("--jobs", type=int, default=20_000)
    tp.add_argument("--timeout", type=float, default=300.0, help="bound on the drain (s)")
    lt = sub.add_parser("latency", help="open-loop load of R single jobs/s for S seconds")
    lt.add_argument("--rate", type=float, default=200.0)
    lt.add_argument("--seconds", type=float, default=10.0)
    lt.add_argument("--start-timeout", type=float, default=60.0)
    lt.add_argument("--drain-timeout", type=float, default=60.0)
    for p in (tp, lt):
        p.add_argument("--workers", type=int, default=peer.default_workers, help="worker processes")
        peer.add_arguments(p)
    return parser


LOCK_PATH = os.environ.get("BENCH_LOCK", os.path.join(tempfile.gettempdir(), "faena-bench.lock"))
LOCK_WAIT_S = 900.0


def bench_lock(wait_s: float = LOCK_WAIT_S) -> int:
    """One benchmark at a time on this machine (runs share Redis databases, PG tables and the
    two cores): ``flock`` on ``$BENCH_LOCK``, held until this process exits."""
    import fcntl

    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o666)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"another benchmark holds {LOCK_PATH}") from None
            time.sleep(0.2)
        else:
            return fd


def main(peer: Peer, argv: list[str] | None = None) -> int:
    opts = build_parser(peer).parse_args(argv)

    def on_term(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    head: dict[str, Any] = {"system": peer.system, "scenario": opts.scenario}
    try:
        head["version"] = peer.version()
        head["config"] = peer.config(opts)
        bench_lock()  # held until this process exits
        body = asyncio.run(_drive(peer, opts))
    except BaseException as exc:
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            raise
        print(f"{peer.system} {opts.scenario} failed: {exc}"[-3000:], file=sys.stderr)
        head["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        print(json.dumps(head), flush=True)
        return 1
    finally:
        WorkerGroup.stop_all()
    # Keep the keys the brief fixes first, then details.
    first = {"system": head["system"], "scenario": head["scenario"]}
    if opts.scenario == "throughput":
        first.update({k: body[k] for k in ("jobs", "seconds", "jobs_per_s")})
    else:
        first.update({k: body[k] for k in ("rate", "n", "p50_ms", "p95_ms", "p99_ms", "max_ms")})
    print(json.dumps({**first, **body, **head}), flush=True)
    return 0


# --------------------------------------------------------------------------- helpers


def pg_dsn(database: str) -> str:
    return f"{PG_BASE_DSN}/{database}"


async def ensure_pg_database(name: str) -> None:
    """CREATE DATABASE name unless it exists (connects to the admin database)."""
    import asyncpg

    conn = await asyncpg.connect(pg_dsn(PG_ADMIN_DB))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def venv_script(name: str) -> str:
    """A console script of the running interpreter's environment (celery, arq, pgq, ...)."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name
