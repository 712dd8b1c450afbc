"""`faena up` as a user runs it: submit from the CLI and Python, cancel, time out, retry, drain,
and kill -9 in the middle of work without losing or double-recording a job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.acceptance.conftest import Env

pytestmark = pytest.mark.acceptance

TASKS = '''
import os
import time

import faena

@faena.task(retries=2)
async def add(a: int, b: int) -> int:
    return a + b

@faena.task
def record(tag: str, seconds: float = 0.0) -> str:
    """Appends one line per execution, so the test can count runs across restarts."""
    job = faena.current_job()
    with open(os.environ["RECORD_FILE"], "a") as f:
        f.write(f"start {tag} {job.job_id} {job.attempt}\\n")
    time.sleep(seconds)
    with open(os.environ["RECORD_FILE"], "a") as f:
        f.write(f"end {tag} {job.job_id} {job.attempt}\\n")
    return tag
'''


def test_submit_shell_and_wait_prints_state_and_output(faena_env: Env) -> None:
    faena_env.up()
    result = faena_env.cli("submit", "shell", "--payload", '{"command": "echo hello"}', "--wait")
    assert "succeeded" in result.stdout
    assert "hello" in result.stdout
    job = json.loads(
        faena_env.cli("--json", "submit", "shell", "--payload", '{"command": "echo hi"}', "--wait")
        .stdout
    )
    logs = faena_env.cli("jobs", "logs", job["id"])
    assert logs.stdout.strip() == "hi"


def test_a_python_task_result_comes_back_through_the_client(faena_env: Env) -> None:
    faena_env.write("acc_tasks.py", TASKS)
    faena_env.env["RECORD_FILE"] = str(faena_env.root / "record.txt")
    faena_env.up("--import", "acc_tasks")
    code = "import faena; print(faena.Client().submit('add', {'a': 2, 'b': 40}).wait(30).result)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=faena_env.env, cwd=faena_env.root,
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert out.stdout.strip() == "42"


def test_cancel_kills_the_running_command_and_its_children(faena_env: Env) -> None:
    faena_env.up()
    pid_file = faena_env.root / "child.pid"
    job = faena_env.submit("shell", {"command": f"sleep 60 & echo $! > {pid_file}; wait"})
    with faena_env.api() as api:
        _wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
        child = int(pid_file.read_text())
        r = api.post(f"/v1/jobs/{job['id']}/cancel")
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "cancelled"
    _wait_for(lambda: not _alive(child))
    final = faena_env.wait_all_terminal([job["id"]])[job["id"]]
    assert final["state"] == "cancelled"


def test_a_job_past_its_timeout_fails_and_can_be_retried(faena_env: Env) -> None:
    faena_env.up()
    job = faena_env.submit("shell", {"command": "sleep 30"}, timeout_s=0.5)
    final = faena_env.wait_all_terminal([job["id"]])[job["id"]]
    assert final["state"] == "failed"
    assert "timed out" in final["error"]
    faena_env.cli("jobs", "retry", job["id"])
    with faena_env.api() as api:
        assert api.get(f"/v1/jobs/{job['id']}").json()["state"] in {"queued", "running", "failed"}


def test_sigterm_lets_a_running_job_finish_before_exiting(faena_env: Env) -> None:
    process = faena_env.up()
    marker = faena_env.root / "finished"
    job = faena_env.submit("shell", {"command": f"sleep 1; touch {marker}"})
    with faena_env.api() as api:
        _wait_for(lambda: api.get(f"/v1/jobs/{job['id']}").json()["state"] == "running")
    assert process.kill(signal.SIGTERM) == 0
    assert marker.exists()
    faena_env.up()
    assert faena_env.wait_all_terminal([job["id"]])[job["id"]]["state"] == "succeeded"


def test_kill_9_mid_run_and_restart_ends_every_job_exactly_once(faena_env: Env) -> None:
    """Every job accepted before the kill reaches a terminal state after a restart; a job that
    succeeded is recorded once, and no attempt is recorded after its job ended."""
    faena_env.write("acc_tasks.py", TASKS)
    record = faena_env.root / "record.txt"
    faena_env.env["RECORD_FILE"] = str(record)
    process = faena_env.up("--import", "acc_tasks", "--workers", "8")
    with faena_env.api() as api:
        batch = [
            {"kind": "record", "payload": {"tag": f"t{i}", "seconds": 0.3}, "max_attempts": 3}
            for i in range(40)
        ] + [{"kind": "shell", "payload": {"command": "sleep 0.2; echo ok"}} for _ in range(20)]
        r = api.post("/v1/jobs/batch", json=batch)
        assert r.status_code == 201, r.text
        ids = [j["id"] for j in r.json()]
        _wait_for(lambda: record.exists() and record.read_text().count("end ") >= 4)
    process.kill(signal.SIGKILL)
    faena_env.up("--import", "acc_tasks", "--workers", "8")
    final = faena_env.wait_all_terminal(ids, timeout=120)
    assert len(final) == len(ids)
    states = {job_id: job["state"] for job_id, job in final.items()}
    assert set(states.values()) <= {"succeeded", "failed"}
    record_jobs = ids[:40]
    assert all(states[i] == "succeeded" for i in record_jobs), states
    lines = record.read_text().split()
    ends = [(lines[i + 2], lines[i + 3]) for i in range(0, len(lines), 4) if lines[i] == "end"]
    for job_id in record_jobs:
        attempt = str(final[job_id]["attempts"])
        assert (job_id, attempt) in ends, f"{job_id} succeeded without its attempt finishing"


def test_a_bad_payload_is_refused_with_one_line_and_a_nonzero_exit(faena_env: Env) -> None:
    faena_env.up()
    result = faena_env.cli("submit", "shell", "--payload", "{not json", check=False)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    result = faena_env.cli("submit", "no-such-kind", check=False)
    assert result.returncode != 0
    assert "unknown kind" in result.stderr


def _wait_for(condition: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (reaped later by init) counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_db_migrate_creates_the_schema_and_is_idempotent(faena_env: Env) -> None:
    first = faena_env.cli("db", "migrate")
    second = faena_env.cli("db", "migrate")
    assert first.stdout.startswith("schema at version ")
    assert first.stdout == second.stdout


def test_a_database_url_nobody_can_open_fails_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "FAENA_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nothing"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "faena"), "db", "migrate"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1, result.stderr
    assert "127.0.0.1:1" in result.stderr
