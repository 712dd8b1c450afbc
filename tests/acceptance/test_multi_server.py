"""Several ``faena server`` processes on one PostgreSQL database, as an operator runs them:
they share the work, a submit or a cancel on one reaches the others within milliseconds
(LISTEN/NOTIFY), and when one is killed with ``kill -9`` the others finish its jobs."""

from __future__ import annotations

import itertools
import signal
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import Env, FaenaProcess
from tests.acceptance.test_embedded import _alive, _wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.postgres]

TASKS = '''
import os
import time

import faena

@faena.task
def record(seconds: float = 0.0) -> int:
    """One line when an execution starts and one when it ends: job, attempt, pid, time."""
    job = faena.current_job()
    with open(os.environ["RECORD_FILE"], "a") as f:
        f.write(f"start {job.job_id} {job.attempt} {os.getpid()} {time.time()}\\n")
    time.sleep(seconds)
    with open(os.environ["RECORD_FILE"], "a") as f:
        f.write(f"end {job.job_id} {job.attempt} {os.getpid()} {time.time()}\\n")
    return os.getpid()
'''


@dataclass(frozen=True)
class Run:
    """One execution of one attempt, as the task recorded it."""

    job_id: str
    attempt: int
    pid: int
    started: float
    ended: float | None


def with_tasks(env: Env) -> Path:
    env.write("multi_tasks.py", TASKS)
    record = env.root / "record.txt"
    env.env["RECORD_FILE"] = str(record)
    return record


def runs(record: Path) -> list[Run]:
    started: dict[tuple[str, int, int], float] = {}
    ended: dict[tuple[str, int, int], float] = {}
    for line in record.read_text().splitlines() if record.exists() else []:
        what, job_id, attempt, pid, ts = line.split()
        (started if what == "start" else ended)[(job_id, int(attempt), int(pid))] = float(ts)
    return [Run(*key, ts, ended.get(key)) for key, ts in started.items()]


def submit_batch(env: Env, process: FaenaProcess, jobs: list[dict[str, Any]]) -> list[str]:
    """Submit through ``process``. A server without workers learns the kinds other servers
    serve from the shared worker registry, which it refreshes every few seconds: until then it
    refuses them, so a refusal for an unknown kind is retried for a while."""
    deadline = time.monotonic() + 15
    with env.api_at(process) as api:
        while True:
            r = api.post("/v1/jobs/batch", json=jobs)
            if r.status_code == 422 and "unknown kind" in r.text and time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            assert r.status_code == 201, r.text
            return [j["id"] for j in r.json()]


def pid(process: FaenaProcess) -> int:
    assert process.proc is not None
    return process.proc.pid


def test_two_servers_share_a_batch_and_run_each_job_exactly_once(pg_env: Env) -> None:
    record = with_tasks(pg_env)
    a = pg_env.server("--workers", "4", "--import", "multi_tasks")
    b = pg_env.server("--workers", "4", "--import", "multi_tasks")
    pg_env.env["FAENA_SERVER"] = a.url

    ids = submit_batch(pg_env, a, [{"kind": "record", "payload": {"seconds": 0.1}}] * 60)
    final = pg_env.wait_all_terminal(ids)

    assert {job["state"] for job in final.values()} == {"succeeded"}
    executions = runs(record)
    assert sorted(r.job_id for r in executions) == sorted(ids)  # one execution per job
    assert all(r.ended is not None for r in executions)
    ran_on = {r.pid for r in executions}
    assert ran_on == {pid(a), pid(b)}, "both servers should have run some of the jobs"


def test_kill_9_of_one_server_its_jobs_are_finished_by_the_other_exactly_once(
    pg_env: Env,
) -> None:
    """FAENA_LEASE_S=2: the killed server's leases run out and the survivor takes its jobs."""
    record = with_tasks(pg_env)
    a = pg_env.server("--workers", "4", "--import", "multi_tasks")
    b = pg_env.server("--workers", "4", "--import", "multi_tasks")
    pg_env.env["FAENA_SERVER"] = b.url
    job = {"kind": "record", "payload": {"seconds": 0.5}, "max_attempts": 3}
    ids = submit_batch(pg_env, b, [job] * 40)

    _wait_for(lambda: any(r.pid == pid(a) and r.ended is None for r in runs(record)))
    a.kill(signal.SIGKILL)
    killed_at = time.time()
    final = pg_env.wait_all_terminal(ids, timeout=90)

    assert {job["state"] for job in final.values()} == {"succeeded"}
    executions = runs(record)
    interrupted = [r for r in executions if r.ended is None]
    assert interrupted and {r.pid for r in interrupted} == {pid(a)}
    for job_id, job in final.items():
        mine = sorted((r for r in executions if r.job_id == job_id), key=lambda r: r.started)
        finished = [r for r in mine if r.attempt == job["attempts"]]
        assert len(finished) == 1 and finished[0].ended is not None, mine
        for earlier, later in itertools.pairwise(mine):  # never two at once
            assert later.started >= (earlier.ended or killed_at), mine
    for run in interrupted:
        assert final[run.job_id]["attempts"] > run.attempt  # run again, by the survivor


def test_a_submit_to_a_server_without_workers_is_run_at_once_by_another(pg_env: Env) -> None:
    """B polls only every 60 s: a start within a second can only come from the wake-up that
    A's submit sent over NOTIFY."""
    record = with_tasks(pg_env)
    a = pg_env.server("--workers", "0")
    pg_env.server(
        "--workers", "2", "--import", "multi_tasks", env={"FAENA_CLAIM_POLL_S": "60"}
    )
    pg_env.env["FAENA_SERVER"] = a.url
    pg_env.wait_all_terminal(submit_batch(pg_env, a, [{"kind": "record"}]))  # A knows the kind
    delays = []
    for _ in range(12):
        submitted_at = time.time()
        [job_id] = submit_batch(pg_env, a, [{"kind": "record"}])
        pg_env.wait_all_terminal([job_id], timeout=10)
        [run] = [r for r in runs(record) if r.job_id == job_id]
        delays.append(run.started - submitted_at)

    assert max(delays) < 1.0, delays
    assert statistics.median(delays) < 0.25, delays


def test_a_cancel_through_one_server_stops_the_job_running_on_another(pg_env: Env) -> None:
    """B renews leases only every 10 s (FAENA_LEASE_S=30), so the stop within a second comes
    from A's cancel announced over NOTIFY, not from a lost lease."""
    a = pg_env.server("--workers", "0")
    pg_env.server("--workers", "2", env={"FAENA_LEASE_S": "30"})
    pg_env.env["FAENA_SERVER"] = a.url
    pid_file = pg_env.root / "child.pid"
    command = f"sleep 60 & echo $! > {pid_file}; wait"
    [job_id] = submit_batch(pg_env, a, [{"kind": "shell", "payload": {"command": command}}])
    _wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
    child = int(pid_file.read_text())

    with pg_env.api_at(a) as api:
        cancelled_at = time.monotonic()
        r = api.post(f"/v1/jobs/{job_id}/cancel")
        assert r.status_code == 200, r.text
    _wait_for(lambda: not _alive(child), timeout=10)
    took = time.monotonic() - cancelled_at

    assert took < 1.5, f"the cancel took {took:.2f}s to stop the job on the other server"
    assert pg_env.wait_all_terminal([job_id])[job_id]["state"] == "cancelled"
