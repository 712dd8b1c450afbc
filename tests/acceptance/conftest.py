"""Acceptance tests start the real ``faena`` command as a user would, and kill it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import POSTGRES_URL, require_service

FAENA = str(Path(sys.executable).parent / "faena")
ADMIN_KEY = "fk_acceptance_admin_key_0123456789"
START_TIMEOUT_S = 20.0


class FaenaProcess:
    """One ``faena up``/``faena server`` process; its stdout is collected in the background."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.args = args
        self.cwd = cwd
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.lines: list[str] = []
        self._pump = threading.Thread()

    def start(self) -> FaenaProcess:
        self.lines = []
        self.proc = subprocess.Popen(
            [FAENA, *self.args],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        ready = threading.Event()

        def pump() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line)
                if line.strip().startswith("API") and "http://" in line:
                    self.url = line.split()[1]
                    ready.set()
            ready.set()

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        if not ready.wait(START_TIMEOUT_S) or not self.url:
            self.kill()
            raise AssertionError("faena did not start:\n" + "".join(self.lines))
        return self

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        code = self.proc.wait(timeout=60)
        self._pump.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)


class Env:
    """A directory with its own faena home and database, and helpers to drive it."""

    def __init__(self, root: Path, database_url: str) -> None:
        self.root = root
        self.database_url = database_url
        self.env = {
            **os.environ,
            "FAENA_DATABASE_URL": database_url,
            "FAENA_BOOTSTRAP_KEY": ADMIN_KEY,
            "FAENA_API_KEY": ADMIN_KEY,
            "FAENA_LEASE_S": "2",
            "FAENA_SHUTDOWN_GRACE_S": "5",
            "FAENA_LOG_FORMAT": "json",
            "FAENA_GRPC_PORT": "0",  # the worker protocol on any free port: tests never collide
            "FAENA_RATE_LIMITS": "off",  # tests/api/test_rate_limits*.py turn them on
            "PYTHONPATH": str(root),
        }
        self.processes: list[FaenaProcess] = []

    def up(self, *args: str) -> FaenaProcess:
        process = FaenaProcess(["up", "--port", "0", *args], self.root, self.env).start()
        self.env["FAENA_SERVER"] = process.url
        self.processes.append(process)
        return process

    def server(self, *args: str, env: dict[str, str] | None = None) -> FaenaProcess:
        """One more ``faena server`` on a free port, on this environment's database; ``env``
        adds variables for this process only. ``FAENA_SERVER`` is left as it was."""
        process = FaenaProcess(
            ["server", "--port", "0", "--grpc-port", "0", *args],
            self.root,
            {**self.env, **(env or {})},
        ).start()
        self.processes.append(process)
        return process

    def api_at(self, process: FaenaProcess) -> httpx.Client:
        """A client of one given process (``api()`` talks to ``FAENA_SERVER``)."""
        return httpx.Client(
            base_url=process.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
        )

    def cli(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [FAENA, *args], cwd=self.root, env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"faena {' '.join(args)} -> {result.returncode}\n{result.stderr}")
        return result

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.env["FAENA_SERVER"],
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=30,
        )

    def submit(self, kind: str, payload: Any = None, **fields: Any) -> dict[str, Any]:
        with self.api() as api:
            r = api.post("/v1/jobs", json={"kind": kind, "payload": payload, **fields})
            assert r.status_code == 201, r.text
            return dict(r.json())

    def wait_all_terminal(self, ids: list[str], timeout: float = 60) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        final: dict[str, dict[str, Any]] = {}
        with self.api() as api:
            for job_id in ids:
                while True:
                    left = deadline - time.monotonic()
                    assert left > 0, f"job {job_id} not terminal in {timeout}s"
                    r = api.get(f"/v1/jobs/{job_id}", params={"wait": min(10, max(1, int(left)))})
                    assert r.status_code == 200, r.text
                    job = r.json()
                    if job["state"] in {"succeeded", "failed", "cancelled"}:
                        final[job_id] = job
                        break
        return final

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text)
        return path

    def close(self) -> None:
        for p in self.processes:
            if p.proc is not None and p.proc.poll() is None:
                p.kill()


def _postgres_database() -> Iterator[str]:
    import asyncio

    import asyncpg

    name = f"faena_acc_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as e:
        require_service("PostgreSQL", e)
    base = POSTGRES_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"])
def faena_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    if request.param == "sqlite":
        env = Env(tmp_path, "sqlite:///./.faena/faena.db")
        yield env
        env.close()
        return
    for url in _postgres_database():
        env = Env(tmp_path, url)
        try:
            yield env
        finally:
            env.close()


@pytest.fixture
def pg_env(tmp_path: Path) -> Iterator[Env]:
    """Like ``faena_env``, PostgreSQL only: for what only a shared database can do (several
    servers on one database)."""
    for url in _postgres_database():
        env = Env(tmp_path, url)
        try:
            yield env
        finally:
            env.close()


def jobs_json(env: Env, *args: str) -> Any:
    return json.loads(env.cli("--json", *args).stdout)
