"""Remote workers, end to end: a real ``faena server`` and real ``faena worker`` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import FAENA, Env, FaenaProcess, _postgres_database, jobs_json

pytestmark = pytest.mark.acceptance


class Worker:
    """One ``faena worker`` process; its output is collected in the background."""

    def __init__(self, env: Env, args: list[str], extra_env: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [FAENA, "worker", *args],
            cwd=env.root,
            env={**env.env, **(extra_env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._pump = threading.Thread(target=self._read, daemon=True)
        self._pump.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float = 20) -> int:
        code = self.proc.wait(timeout=timeout)
        self._pump.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

    def stop(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait()


class Cluster:
    """A server without a local pool, and the workers started against it."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.server = FaenaProcess(
            ["server", "--port", "0", "--grpc-port", "0"], env.root, env.env
        ).start()
        env.processes.append(self.server)
        env.env["FAENA_SERVER"] = self.server.url
        grpc_line = next(x for x in self.server.lines if x.strip().startswith("grpc"))
        self.grpc = grpc_line.split()[1]
        self.workers: list[Worker] = []
        self.token = self.create_token("acceptance")

    def create_token(self, name: str) -> str:
        return self.env.cli("workers", "token", "create", name).stdout.strip()

    def worker(self, *args: str, token: str | None = None, wait: bool = True, **env: str) -> Worker:
        worker_id = f"w{len(self.workers) + 1}"
        w = Worker(
            self.env,
            [
                "--server",
                self.grpc,
                "--token",
                token or self.token,
                "--worker-id",
                worker_id,
                *args,
            ],
            env,
        )
        self.workers.append(w)
        if wait:
            wait_for(lambda: self.live(worker_id), what=f"worker {worker_id} connected", output=w)
        return w

    def live(self, worker_id: str) -> bool:
        with self.env.api() as api:
            found = api.get("/v1/workers").json()["workers"]
        return any(w["id"] == worker_id and w["live"] for w in found)

    def job(self, job_id: str) -> dict[str, Any]:
        with self.env.api() as api:
            r = api.get(f"/v1/jobs/{job_id}")
            assert r.status_code == 200, r.text
            return dict(r.json())

    def batch(self, jobs: list[dict[str, Any]]) -> list[str]:
        with self.env.api() as api:
            r = api.post("/v1/jobs/batch", json={"jobs": jobs})
            assert r.status_code == 201, r.text
            return [j["id"] for j in r.json()]

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        self.env.close()


def wait_for(
    condition: Callable[[], object], *, what: str, timeout: float = 20, output: Any = None
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            extra = f"\n{output.output}" if output is not None else ""
            raise AssertionError(f"timed out waiting for {what}{extra}")
        time.sleep(0.05)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(Env(tmp_path, "sqlite:///./.faena/faena.db"))
    yield c
    c.close()


def test_jobs_go_to_workers_with_the_labels_they_require(cluster: Cluster) -> None:
    cluster.worker("--labels", "region=eu")
    cluster.worker("--labels", "region=us,gpu=false")
    sleep = {"kind": "sleep", "payload": {"seconds": 0.05}}
    ids = cluster.batch(
        [{**sleep, "labels": {"region": "eu"}} for _ in range(4)]
        + [{**sleep, "labels": {"region": "us"}} for _ in range(4)]
        + [{**sleep, "labels": {"region": "in (us,ap)"}}]
    )
    final = cluster.env.wait_all_terminal(ids, timeout=30)
    assert {final[i]["worker_id"] for i in ids[:4]} == {"w1"}
    assert {final[i]["worker_id"] for i in ids[4:]} == {"w2"}
    assert all(j["state"] == "succeeded" for j in final.values())
    (gpu,) = cluster.batch([{**sleep, "labels": {"gpu": "true"}}])
    time.sleep(0.5)
    job = cluster.job(gpu)
    assert job["state"] == "queued"
    assert job["placement"] == "no connected worker serving 'sleep' has label gpu=true"


def test_a_worker_reporting_high_load_receives_less(cluster: Cluster) -> None:
    cluster.worker("--concurrency", "4", "--report-cpu", "95")
    cluster.worker("--concurrency", "4", "--report-cpu", "5")
    time.sleep(0.3)  # both have sent a heartbeat with their load
    ids = cluster.batch([{"kind": "sleep", "payload": {"seconds": 1}} for _ in range(4)])
    final = cluster.env.wait_all_terminal(ids, timeout=30)
    placed = [final[i]["worker_id"] for i in ids]
    assert placed.count("w2") > placed.count("w1"), placed


def test_a_job_on_a_killed_worker_completes_elsewhere_exactly_once(cluster: Cluster) -> None:
    doomed = cluster.worker()
    (job_id,) = cluster.batch([{"kind": "sleep", "payload": {"seconds": 2}, "max_attempts": 3}])
    wait_for(lambda: cluster.job(job_id)["state"] == "running", what="the job running")
    assert cluster.job(job_id)["worker_id"] == "w1"
    doomed.signal(signal.SIGKILL)
    cluster.worker()
    final = cluster.env.wait_all_terminal([job_id], timeout=30)[job_id]
    assert final["state"] == "succeeded"
    assert final["worker_id"] == "w2"
    assert final["attempts"] == 2  # attempt 1 died with its worker; one success recorded


def test_a_wrong_or_revoked_token_is_refused_with_one_line(cluster: Cluster) -> None:
    wrong = cluster.worker(token="fw_not_a_real_token", wait=False)
    assert wrong.wait(timeout=15) == 4
    assert wrong.output.strip().splitlines()[-1].startswith("faena: worker token refused")
    token = cluster.create_token("to-revoke")
    w = cluster.worker(token=token)
    tokens = {t["name"]: t["id"] for t in jobs_json(cluster.env, "workers", "token", "list")}
    cluster.env.cli("workers", "token", "revoke", tokens["to-revoke"])
    assert w.wait(timeout=10) == 4
    assert w.output.strip().splitlines()[-1] == "faena: worker token revoked"
    again = cluster.worker(token=token, wait=False)
    assert again.wait(timeout=15) == 4


def test_cancelling_a_job_kills_its_process_on_the_worker_within_a_second(
    cluster: Cluster,
) -> None:
    cluster.worker("--allow-shell")
    pid_file = cluster.env.root / "pid"
    (job_id,) = cluster.batch(
        [{"kind": "shell", "payload": {"command": f"echo $$ > {pid_file}; exec sleep 60"}}]
    )
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the command")
    pid = int(pid_file.read_text())
    with cluster.env.api() as api:
        assert api.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    cancelled_at = time.monotonic()
    wait_for(lambda: not _alive(pid), what="the process killed", timeout=5)
    assert time.monotonic() - cancelled_at < 1.0
    assert cluster.job(job_id)["state"] == "cancelled"


def test_logs_follow_and_mask_a_secret_split_across_chunks(cluster: Cluster) -> None:
    secret = "hunter2-is-my-secret"
    cluster.worker("--allow-shell", ACC_API_TOKEN=secret)
    command = (
        "echo first; printf 'key=hunter2-is'; sleep 0.4; printf -- '-my-secret end\\n'; "
        "for i in 1 2 3; do echo line $i; sleep 0.1; done; echo $ACC_API_TOKEN"
    )
    (job_id,) = cluster.batch([{"kind": "shell", "payload": {"command": command}}])
    follow = cluster.env.cli("jobs", "logs", job_id, "--follow", timeout=30)
    assert follow.stdout.splitlines() == [
        "first",
        "key=**** end",
        "line 1",
        "line 2",
        "line 3",
        "****",
    ]
    job = cluster.env.wait_all_terminal([job_id])[job_id]
    assert secret not in str(job["result"])
    with cluster.env.api() as api:
        chunks = api.get(f"/v1/jobs/{job_id}/logs").json()["chunks"]
        assert len(chunks) >= 3
        assert all(secret not in c["data"] for c in chunks)
        # A client that saw the first chunks resumes after the last cursor: no gap, no repeat.
        middle = chunks[1]["cursor"]
        rest = api.get(f"/v1/jobs/{job_id}/logs", params={"after": middle}).json()["chunks"]
        assert [c["cursor"] for c in chunks[:2] + rest] == [c["cursor"] for c in chunks]


def test_sigterm_drains_a_worker_and_hands_unfinished_jobs_back(cluster: Cluster) -> None:
    w = cluster.worker("--grace", "1")
    short, long = cluster.batch(
        [
            {"kind": "sleep", "payload": {"seconds": 0.5}},
            {"kind": "sleep", "payload": {"seconds": 30}},
        ]
    )
    wait_for(
        lambda: (
            cluster.job(short)["state"] == "running" and cluster.job(long)["state"] == "running"
        ),
        what="both jobs running",
    )
    w.signal(signal.SIGTERM)
    assert w.wait(timeout=15) == 0
    assert cluster.job(short)["state"] == "succeeded"
    back = cluster.job(long)
    assert back["state"] == "queued"


def test_workers_are_listed_with_capacity_and_load(cluster: Cluster) -> None:
    cluster.worker("--labels", "region=eu", "--concurrency", "3", "--report-cpu", "42")
    wait_for(
        lambda: jobs_json(cluster.env, "workers", "list")[0]["load"]["cpu_percent"] == 42,
        what="the heartbeat's load recorded",
    )
    (w,) = jobs_json(cluster.env, "workers", "list")
    assert w["kind"] == "remote"
    assert w["labels"] == {"region": "eu"}
    assert w["capacity"]["slots"] == 3
    table = cluster.env.cli("workers", "list").stdout
    assert "w1" in table and "region=eu" in table


def test_a_shared_store_refuses_a_kind_no_live_worker_serves(tmp_path: Path) -> None:
    for url in _postgres_database():
        env = Env(tmp_path, url)
        try:
            c = Cluster(env)
            refused = env.cli("submit", "noop", check=False)
            assert refused.returncode != 0
            assert "unknown kind 'noop'" in refused.stderr
            c.worker()
            env.cli("submit", "noop", "--wait")
            c.close()
        finally:
            env.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False
