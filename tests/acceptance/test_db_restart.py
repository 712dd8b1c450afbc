"""`faena server` rides out a PostgreSQL restart: while the database is away the API answers 503
with a clear error and the background loops keep retrying; once it is back everything recovers
on its own and no accepted job is lost.

Runs against a private PostgreSQL cluster this test creates and stops (never the shared one):
``initdb`` in a temporary directory, on a free port, as the ``postgres`` user when run as root.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.acceptance.conftest import Env
from tests.acceptance.test_embedded import _wait_for
from tests.acceptance.test_multi_server import runs, submit_batch, with_tasks

pytestmark = [pytest.mark.acceptance, pytest.mark.postgres]


class PrivateCluster:
    """A throw-away PostgreSQL cluster: ``start()``/``stop()`` it at will."""

    def __init__(self, bindir: Path, root: Path, port: int, run_as: list[str]) -> None:
        self.bindir = bindir
        self.data = root / "data"
        self.root = root
        self.port = port
        self.run_as = run_as
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        result = subprocess.run(
            [*self.run_as, str(self.bindir / tool), *args],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr.strip()}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-N")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def private_cluster() -> Iterator[PrivateCluster]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    bindir = Path(os.environ.get("FAENA_TEST_PG_BIN") or (found[-1] if found else "")).parent
    if not (bindir / "initdb").exists() or not (bindir / "pg_ctl").exists():
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl); set FAENA_TEST_PG_BIN")
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run initdb as")
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root without runuser to run initdb as 'postgres'")
        run_as = [runuser, "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="faena-pg-"))
    if run_as:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    cluster = PrivateCluster(bindir, root, _free_port(), run_as)
    try:
        cluster.init()
        cluster.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"cannot start a private PostgreSQL cluster: {e}")
    try:
        yield cluster
    finally:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def test_the_server_rides_out_a_database_restart_without_losing_a_job(
    private_cluster: PrivateCluster, tmp_path: Path
) -> None:
    env = Env(tmp_path, private_cluster.url)
    env.env["FAENA_LEASE_S"] = "30"  # longer than the outage: running jobs keep their leases
    record = with_tasks(env)
    server = env.server("--workers", "4", "--import", "multi_tasks")
    env.env["FAENA_SERVER"] = server.url
    before = submit_batch(env, server, [{"kind": "record", "payload": {"seconds": 1.5}}] * 6)
    _wait_for(lambda: len(runs(record)) >= 4)

    private_cluster.stop()
    with env.api() as api:
        refused = api.post("/v1/jobs", json={"kind": "record"})
        ready = api.get("/readyz")
        _wait_for(lambda: sum(r.ended is not None for r in runs(record)) >= 4)  # meanwhile
        started = time.monotonic()
        fast = api.get("/v1/jobs")  # the breaker is open by now: no waiting for a timeout
        fast_s = time.monotonic() - started
    private_cluster.start()
    with env.api() as api:
        _wait_for(lambda: _status(api, "/readyz") == 200, timeout=30)
    after = submit_batch(env, server, [{"kind": "record"}] * 3)
    final = env.wait_all_terminal(before + after, timeout=60)

    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "unavailable"
    assert "unavailable" in refused.json()["error"]["message"]
    assert ready.status_code == 503
    assert fast.status_code == 503 and fast_s < 1.0
    assert {job["state"] for job in final.values()} == {"succeeded"}
    finished_while_away = [r.job_id for r in runs(record) if r.job_id in before and r.ended]
    for job_id in finished_while_away:  # their buffered outcomes were written, not re-run
        assert final[job_id]["attempts"] == 1
    assert server.proc is not None and server.proc.poll() is None
    assert "failing fast" in server.output
    assert server.kill(signal.SIGTERM) == 0


def _status(api: httpx.Client, path: str) -> int:
    try:
        return api.get(path).status_code
    except httpx.HTTPError:
        return 0
