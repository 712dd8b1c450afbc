"""The ``faena`` command against a real server on 127.0.0.1 (CliRunner in-process)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from faena.cli import main
from faena.client import Client
from tests.api.live import LiveServer


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    live = LiveServer().start()
    yield live
    live.stop()


@pytest.fixture
def faena(server: LiveServer, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run ``faena ARGS`` with the server's URL and key in the environment."""
    runner = CliRunner(
        env={
            "FAENA_SERVER": server.url,
            "FAENA_API_KEY": server.api_key,
            "FAENA_HOME": str(tmp_path),
            "FAENA_JSON": None,
        }
    )

    def run(*args: str, input: str | None = None) -> Result:
        return runner.invoke(main, list(args), input=input, catch_exceptions=False)

    return run


def one_error_line(result: Result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("faena: ")
    assert "Traceback" not in result.output
    return lines[0]


def test_submit_prints_the_id_kind_and_state(faena) -> None:  # type: ignore[no-untyped-def]
    result = faena("submit", "noop")
    assert result.exit_code == 0
    job_id, kind, state = result.stdout.split()
    # An idle local pool takes the job in the submit's own commit (FAENA_START_ON_SUBMIT).
    assert kind == "noop" and state in ("queued", "running")
    assert len(job_id) == 36


def test_submit_wait_prints_the_output_state_and_result(faena) -> None:  # type: ignore[no-untyped-def]
    result = faena("submit", "shell", "--payload", '{"command": "echo hello"}', "--wait")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].endswith(("shell  queued", "shell  running"))
    assert "hello" in lines
    assert "state: succeeded" in lines
    assert any(line.startswith("result: ") and '"exit_code":0' in line for line in lines)


def test_submit_wait_exits_1_when_the_job_fails(faena) -> None:  # type: ignore[no-untyped-def]
    result = faena("submit", "shell", "--payload", '{"command": "exit 3"}', "--wait")
    assert result.exit_code == 1
    assert " failed" in one_error_line(result)
    assert "state: failed" in result.stdout


def test_submit_wait_timeout_exits_5(faena) -> None:  # type: ignore[no-untyped-def]
    result = faena(
        "submit", "sleep", "--payload", '{"seconds": 30}', "--wait", "--wait-timeout", "0.2"
    )
    assert result.exit_code == 5
    assert "after 0.2s" in one_error_line(result)
    faena("jobs", "cancel", result.stdout.split()[0])


def test_submit_with_json_prints_the_job(faena) -> None:  # type: ignore[no-untyped-def]
    result = faena(
        "--json", "submit", "noop", "--queue", "q1", "--priority", "4", "--label", "zone=eu",
        "--retries", "2", "--timeout", "9", "--delay", "60", "--idempotency-key", "cli-1",
    )  # fmt: skip
    job = json.loads(result.stdout)
    assert (job["queue"], job["priority"], job["labels"]) == ("q1", 4, {"zone": "eu"})
    assert (job["max_attempts"], job["timeout_s"], job["state"]) == (3, 9.0, "scheduled")
    assert job["idempotency_key"] == "cli-1"


def test_submit_wait_with_json_includes_the_logs(faena) -> None:  # type: ignore[no-untyped-def]
    result = faena("submit", "shell", "--payload", '{"command": "echo hi"}', "--wait", "--json")
    job = json.loads(result.stdout)
    assert (job["state"], job["logs"]) == ("succeeded", "hi\n")


def test_the_payload_may_come_from_a_file(faena, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "p.json").write_text('{"command": "echo from-file"}')
    result = faena("submit", "shell", "--payload", f"@{tmp_path / 'p.json'}", "--wait")
    assert "from-file" in result.stdout.splitlines()


def test_a_bad_payload_names_the_problem_and_position(faena) -> None:  # type: ignore[no-untyped-def]
    result = faena("submit", "noop", "--payload", '{"a": }')
    assert result.exit_code == 2
    assert "--payload" in one_error_line(result)
    assert "line 1 column 7" in result.stderr


def test_a_bad_label_is_a_usage_error(faena) -> None:  # type: ignore[no-untyped-def]
    result = faena("submit", "noop", "--label", "novalue")
    assert result.exit_code == 2
    assert "key=value" in one_error_line(result)


def test_an_unknown_kind_is_refused_with_one_line(faena) -> None:  # type: ignore[no-untyped-def]
    result = faena("submit", "nope")
    assert result.exit_code == 1
    assert "unknown kind 'nope'" in one_error_line(result)


def test_an_unreachable_server_names_the_url(faena) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        result = faena("--server", url, "jobs", "list")
    assert result.exit_code == 3
    assert one_error_line(result) == f"faena: cannot reach faena at {url}: connection refused"


def test_a_wrong_key_exits_4(faena) -> None:  # type: ignore[no-untyped-def]
    result = faena("--api-key", "fk_wrong", "jobs", "list")
    assert result.exit_code == 4
    assert "invalid API key" in one_error_line(result)


def test_jobs_list_prints_a_table(faena) -> None:  # type: ignore[no-untyped-def]
    job_id = faena("submit", "noop", "--queue", "listed", "--delay", "60").stdout.split()[0]
    result = faena("jobs", "list", "--queue", "listed", "--state", "scheduled")
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["ID", "KIND", "QUEUE", "STATE", "ATTEMPTS", "CREATED"]
    assert rows[0].split()[:4] == [job_id, "noop", "listed", "scheduled"]


def test_jobs_list_json(faena) -> None:  # type: ignore[no-untyped-def]
    faena("submit", "noop", "--queue", "listed-json")
    page = json.loads(faena("jobs", "list", "--queue", "listed-json", "--json").stdout)
    assert [j["queue"] for j in page["jobs"]] == ["listed-json"]
    assert "next_cursor" in page


def test_jobs_show(faena) -> None:  # type: ignore[no-untyped-def]
    job_id = faena("submit", "noop", "--payload", '{"x": 1}').stdout.split()[0]
    result = faena("jobs", "show", job_id)
    fields = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert (fields["id"], fields["kind"], fields["payload"]) == (job_id, "noop", '{"x":1}')


def test_jobs_show_of_an_unknown_id_exits_1(faena) -> None:  # type: ignore[no-untyped-def]
    result = faena("jobs", "show", "missing")
    assert result.exit_code == 1
    assert one_error_line(result) == "faena: no job 'missing'"


def test_jobs_logs_prints_the_raw_output(faena) -> None:  # type: ignore[no-untyped-def]
    submitted = faena("submit", "shell", "--payload", '{"command": "echo hello"}', "--wait")
    job_id = submitted.stdout.split()[0]
    assert faena("jobs", "logs", job_id).stdout == "hello\n"


def test_jobs_logs_follow_prints_until_the_end(faena) -> None:  # type: ignore[no-untyped-def]
    command = "for i in 1 2 3; do echo line $i; sleep 0.05; done"
    job_id = faena("submit", "shell", "--payload", json.dumps({"command": command})).stdout.split()[
        0
    ]
    result = faena("jobs", "logs", job_id, "--follow")
    assert result.stdout == "line 1\nline 2\nline 3\n"


def test_jobs_cancel_and_retry(faena) -> None:  # type: ignore[no-untyped-def]
    job_id = faena("submit", "noop", "--delay", "60").stdout.split()[0]
    assert faena("jobs", "cancel", job_id).stdout.split() == [job_id, "noop", "cancelled"]
    again = faena("jobs", "cancel", job_id)
    assert again.exit_code == 1
    assert "cancelled" in one_error_line(again)
    assert faena("jobs", "retry", job_id).exit_code == 0


def test_keys_create_prints_the_key_once_and_it_works(faena, server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    result = faena("keys", "create", "ci", "--scope", "jobs:read", "--expires-in", "3600")
    key = result.stdout.strip()
    assert key.startswith("fk_")
    assert "not shown again" in result.stderr
    with Client(server.url, key) as client:
        assert client.list_jobs(limit=1) is not None


def test_keys_create_takes_the_keys_own_rate_limits(faena) -> None:  # type: ignore[no-untyped-def]
    result = faena(
        "--json", "keys", "create", "probe", "--rate-limit", "50",
        "--rate-limit-bulk", "7", "--rate-limit-health", "5000",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert (created["rate_limit"], created["rate_limit_bulk"], created["rate_limit_health"]) == (
        50,
        7,
        5000,
    )


def test_keys_list_and_revoke(faena) -> None:  # type: ignore[no-untyped-def]
    created = json.loads(faena("keys", "create", "temp", "--json").stdout)
    listed = faena("keys", "list")
    assert created["id"] in listed.stdout
    assert faena("keys", "revoke", created["id"]).stdout.startswith(f"revoked {created['id']}")
    keys = json.loads(faena("--json", "keys", "list").stdout)["keys"]
    [revoked] = [k for k in keys if k["id"] == created["id"]]
    assert revoked["revoked_at"] is not None


def test_an_unknown_scope_is_refused(faena) -> None:  # type: ignore[no-untyped-def]
    result = faena("keys", "create", "x", "--scope", "everything")
    assert result.exit_code == 1
    assert "unknown scopes" in one_error_line(result)


def test_a_missing_argument_is_a_one_line_usage_error(faena) -> None:  # type: ignore[no-untyped-def]
    result = faena("jobs", "show")
    assert result.exit_code == 2
    assert "Missing argument 'ID'" in one_error_line(result)


def test_the_global_flags_read_their_environment_variables(faena, server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner(env={"FAENA_SERVER": server.url, "FAENA_API_KEY": server.api_key,
                            "FAENA_JSON": "1"})  # fmt: skip
    result = runner.invoke(main, ["jobs", "list", "--limit", "1"])
    assert "jobs" in json.loads(result.stdout)


def test_the_admin_key_file_is_used_when_no_key_is_given(
    server: LiveServer, tmp_path: Path
) -> None:
    (tmp_path / "admin.key").write_text(server.api_key + "\n")
    runner = CliRunner(env={"FAENA_SERVER": server.url, "FAENA_HOME": str(tmp_path),
                            "FAENA_API_KEY": None})  # fmt: skip
    assert runner.invoke(main, ["jobs", "list"]).exit_code == 0


def test_submit_resources_are_sent_with_the_job(faena) -> None:  # type: ignore[no-untyped-def]
    result = faena("--json", "submit", "noop", "--resources", "cpu=2,memory_mb=512")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["resources"] == {"cpu": 2.0, "memory_mb": 512}


def test_bad_resources_are_a_usage_error_or_the_servers_one_line(faena) -> None:  # type: ignore[no-untyped-def]
    result = faena("submit", "noop", "--resources", "gpu=1")
    assert result.exit_code == 2
    assert "expected cpu=N or memory_mb=N" in one_error_line(result)
    result = faena("submit", "noop", "--resources", "cpu=lots")
    assert result.exit_code == 2 and "not a number" in one_error_line(result)
    result = faena("submit", "noop", "--resources", "cpu=100000")
    assert result.exit_code == 1
    assert "resources.cpu: Input should be less than or equal to" in one_error_line(result)
