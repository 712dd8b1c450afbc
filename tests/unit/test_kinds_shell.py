"""The shell kind: how commands run, what they report, and that nothing they start survives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from faena.domain.logs import LogStream
from faena.worker.executor import Executor, Outcome
from faena.worker.kinds.shell import TAIL_BYTES, _Capture
from tests.unit.executor_support import RecordingSink, make_job, process_gone

GRACE_S = 0.3


@pytest.fixture
async def executor() -> AsyncIterator[Executor]:
    ex = Executor(kill_grace_s=GRACE_S)
    try:
        yield ex
    finally:
        await ex.aclose()


async def run_shell(executor: Executor, payload: Any, **job: Any) -> tuple[Outcome, RecordingSink]:
    sink = RecordingSink()
    outcome = await executor.run(make_job("shell", payload, **job), sink)
    return outcome, sink


def first_line_pid(sink: RecordingSink) -> int:
    return int(sink.stdout.split("\n", 1)[0])


def has_line(sink: RecordingSink) -> bool:
    return "\n" in sink.stdout


async def test_a_string_command_runs_through_sh(executor: Executor) -> None:
    outcome, _ = await run_shell(executor, {"command": "echo $((1 + 2)) | tr 3 x"})
    assert outcome == Outcome(
        succeeded=True, result={"exit_code": 0, "stdout": "x\n", "stderr": ""}
    )


async def test_a_list_command_is_executed_without_a_shell(executor: Executor) -> None:
    outcome, _ = await run_shell(executor, {"command": ["echo", "$HOME", "a  b"]})
    assert outcome.result["stdout"] == "$HOME a  b\n"


async def test_env_is_added_to_the_worker_environment(executor: Executor) -> None:
    outcome, _ = await run_shell(
        executor, {"command": 'echo "$GREETING:${PATH:+has-path}"', "env": {"GREETING": "hola"}}
    )
    assert outcome.result["stdout"] == "hola:has-path\n"


@pytest.fixture
def workdir(tmp_path: Path) -> str:
    return str(tmp_path.resolve())


async def test_cwd_is_the_working_directory(executor: Executor, workdir: str) -> None:
    outcome, _ = await run_shell(executor, {"command": ["pwd"], "cwd": workdir})
    assert outcome.result["stdout"] == f"{workdir}\n"


async def test_a_missing_cwd_fails_without_retry(executor: Executor, tmp_path: Path) -> None:
    outcome, _ = await run_shell(executor, {"command": "true", "cwd": str(tmp_path / "nope")})
    assert (outcome.succeeded, outcome.retryable) == (False, False)
    assert outcome.error is not None and "is not a directory" in outcome.error


async def test_a_missing_program_fails_without_retry(executor: Executor) -> None:
    outcome, _ = await run_shell(executor, {"command": ["/no/such/program"]})
    assert outcome == Outcome(
        succeeded=False, error="command not found: /no/such/program", retryable=False
    )


async def test_a_non_zero_exit_fails_with_its_code_and_keeps_the_output(
    executor: Executor,
) -> None:
    outcome, _ = await run_shell(executor, {"command": "echo partial; echo oops >&2; exit 3"})
    assert outcome == Outcome(
        succeeded=False,
        result={"exit_code": 3, "stdout": "partial\n", "stderr": "oops\n"},
        error="command exited with code 3",
        retryable=True,
    )


async def test_a_command_killed_by_a_signal_says_which(executor: Executor) -> None:
    outcome, _ = await run_shell(executor, {"command": "kill -KILL $$"})
    assert (outcome.error, outcome.result["exit_code"]) == ("command was killed by SIGKILL", -9)


async def test_stdout_and_stderr_arrive_in_order_on_their_own_streams(
    executor: Executor,
) -> None:
    script = "for i in 1 2 3; do echo out$i; echo err$i >&2; done"
    outcome, sink = await run_shell(executor, {"command": script})
    assert outcome.succeeded
    assert sink.stdout == "out1\nout2\nout3\n"
    assert sink.stderr == "err1\nerr2\nerr3\n"
    assert {stream for stream, _ in sink.chunks} == {LogStream.STDOUT, LogStream.STDERR}


async def test_output_is_streamed_while_the_command_runs(executor: Executor) -> None:
    sink = RecordingSink()
    run = asyncio.create_task(
        executor.run(make_job("shell", {"command": "echo ready; exec sleep 60"}), sink)
    )
    await sink.wait_for(lambda s: s.stdout == "ready\n")
    assert not run.done()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run


async def test_the_result_keeps_the_last_64_kib_and_the_log_everything(
    executor: Executor,
) -> None:
    outcome, sink = await run_shell(
        executor, {"command": "head -c 100000 /dev/zero | tr '\\0' a; printf END"}
    )
    assert len(sink.stdout) == 100_003
    assert len(outcome.result["stdout"]) == TAIL_BYTES
    assert outcome.result["stdout"].endswith("aEND")


async def test_a_character_split_between_reads_is_decoded_whole() -> None:
    sink = RecordingSink()
    capture = _Capture(sink, asyncio.get_running_loop())
    capture.pipe_data_received(1, "é".encode()[:1])
    capture.pipe_data_received(1, "é".encode()[1:] + b"!")
    capture.pipe_data_received(2, b"\xff")
    capture.pipe_connection_lost(1, None)
    capture.pipe_connection_lost(2, None)
    assert sink.chunks == [(LogStream.STDOUT, "é!"), (LogStream.STDERR, "\ufffd")]
    assert capture.closed.done()


async def test_a_command_past_its_timeout_is_killed_and_times_out(executor: Executor) -> None:
    outcome, sink = await run_shell(
        executor, {"command": "echo started; exec sleep 60"}, timeout_s=0.2
    )
    assert (outcome.succeeded, outcome.error, outcome.retryable) == (
        False,
        "timed out after 0.2s",
        True,
    )
    assert outcome.result == {"exit_code": -15, "stdout": "started\n", "stderr": ""}
    assert "sent SIGTERM to process group" in sink.text(LogStream.SYSTEM)


async def test_cancelling_kills_the_whole_process_group(executor: Executor) -> None:
    sink = RecordingSink()
    run = asyncio.create_task(
        executor.run(make_job("shell", {"command": "sleep 60 & echo $!; wait"}), sink)
    )
    await sink.wait_for(has_line)
    child = first_line_pid(sink)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert process_gone(child)


async def test_a_group_ignoring_sigterm_is_killed_after_the_grace(executor: Executor) -> None:
    sink = RecordingSink()
    script = "trap '' TERM; sleep 60 & echo $!; wait"
    run = asyncio.create_task(executor.run(make_job("shell", {"command": script}), sink))
    await sink.wait_for(has_line)
    child = first_line_pid(sink)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert process_gone(child)
    assert "sent SIGKILL to process group" in sink.text(LogStream.SYSTEM)


async def test_processes_left_behind_when_the_command_exits_are_terminated(
    executor: Executor,
) -> None:
    outcome, sink = await run_shell(executor, {"command": "sleep 60 & echo $!"})
    assert outcome.succeeded
    assert process_gone(first_line_pid(sink))


async def test_shell_is_refused_without_retry_when_not_allowed() -> None:
    ex = Executor(allow_shell=False)
    outcome = await ex.run(make_job("shell", {"command": "true"}), RecordingSink())
    assert (outcome.succeeded, outcome.retryable) == (False, False)
    assert outcome.error == "this worker does not run shell jobs (shell is disabled)"


async def test_a_bad_shell_payload_fails_without_retry(executor: Executor) -> None:
    outcome, _ = await run_shell(executor, {"command": 42})
    assert (outcome.succeeded, outcome.retryable) == (False, False)


# --- the same under uvloop, which `faena up` runs on -----------------------------------------


def run_on_uvloop(scenario: Any) -> Any:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(scenario())


def test_on_uvloop_a_command_reports_its_output_and_exit_code() -> None:
    async def scenario() -> Outcome:
        ex = Executor(kill_grace_s=GRACE_S)
        outcome, _ = await run_shell(ex, {"command": "echo hi; echo err >&2; exit 2"})
        await ex.aclose()
        return outcome

    outcome = run_on_uvloop(scenario)
    assert outcome.result == {"exit_code": 2, "stdout": "hi\n", "stderr": "err\n"}


def test_on_uvloop_cancelling_kills_the_whole_process_group() -> None:
    async def scenario() -> int:
        ex = Executor(kill_grace_s=GRACE_S)
        sink = RecordingSink()
        run = asyncio.create_task(
            ex.run(make_job("shell", {"command": "sleep 60 & echo $!; wait"}), sink)
        )
        await sink.wait_for(has_line)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        await ex.aclose()
        return first_line_pid(sink)

    assert process_gone(run_on_uvloop(scenario))


def test_on_uvloop_a_command_past_its_timeout_times_out() -> None:
    async def scenario() -> Outcome:
        ex = Executor(kill_grace_s=GRACE_S)
        outcome, _ = await run_shell(ex, {"command": "exec sleep 60"}, timeout_s=0.1)
        await ex.aclose()
        return outcome

    assert run_on_uvloop(scenario).error == "timed out after 0.1s"
