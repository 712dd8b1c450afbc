"""The executor: built-in kinds noop and sleep, Python tasks on the loop, in threads and in the
process pool, timeouts, cancellation, the job context and the outcome of each."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
from collections.abc import AsyncIterator

import pytest

from faena.domain.logs import LogStream
from faena.ports.executor import KindDefaults
from faena.worker.context import current_job
from faena.worker.executor import Executor, Outcome, PermanentError
from faena.worker.registry import TaskRegistry, task
from tests.unit import cpu_tasks
from tests.unit.executor_support import RecordingSink, make_job

registry = TaskRegistry()
started = threading.Event()
coroutine_finalized: list[str] = []


@dataclasses.dataclass
class Point:
    x: int
    y: int


@task(registry=registry)
async def add(a: int, b: int) -> int:
    return a + b


@task(registry=registry)
async def no_arguments() -> str:
    return "none"


@task(registry=registry)
async def echo(value: object) -> object:
    return value


@task(registry=registry)
async def fails() -> None:
    raise ValueError("bad input")


@task(registry=registry)
async def fails_for_good() -> None:
    raise PermanentError("the invoice does not exist")


@task(registry=registry)
async def raises_its_own_timeout() -> None:
    raise TimeoutError("upstream took too long")


@task(registry=registry)
async def returns_a_set() -> set[int]:
    return {1, 2}


@task(registry=registry)
async def returns_structures() -> dict[str, object]:
    return {"pair": (1, 2), "point": Point(1, 2)}


@task(registry=registry, timeout=0.05, retries=2, queue="slow")
async def hangs() -> None:
    try:
        await asyncio.Event().wait()
    finally:
        coroutine_finalized.append("hangs")


@task(registry=registry)
async def whoami() -> dict[str, object]:
    job = current_job()
    job.log("working")
    return {"job_id": job.job_id, "attempt": job.attempt, "tenant": job.tenant, "kind": job.kind}


@task(registry=registry)
def in_thread(n: int) -> dict[str, object]:
    current_job().log(f"thread sees {current_job().job_id}")
    return {"n": n, "thread": threading.get_ident()}


@task(registry=registry)
def blocks_in_thread() -> None:
    started.set()
    threading.Event().wait(2)


@task(registry=registry)
def fails_in_thread(text: str) -> None:
    raise KeyError(text)


@pytest.fixture
async def executor() -> AsyncIterator[Executor]:
    ex = Executor(registry, cpu_workers=1)
    try:
        yield ex
    finally:
        await ex.aclose()


@pytest.fixture
async def cpu_executor() -> AsyncIterator[Executor]:
    ex = Executor(cpu_tasks.registry, cpu_workers=1)
    try:
        yield ex
    finally:
        await ex.aclose()


# --- kinds and defaults ---------------------------------------------------------------------


def test_kinds_are_the_builtins_and_the_registered_tasks() -> None:
    kinds = Executor(registry).kinds()
    assert {"noop", "sleep", "shell", "http", "add", "in_thread"} <= kinds


def test_kinds_leave_out_shell_when_it_is_not_allowed() -> None:
    assert "shell" not in Executor(registry, allow_shell=False).kinds()


class _RecordingAgent:
    """An ``agent`` KindHandler that only records the jobs it was asked to run."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def validate(self, payload: object) -> None:
        return None

    async def run(self, job: object, sink: object) -> Outcome:
        self.ran.append(getattr(job, "id", ""))
        return Outcome(True, "ran")

    async def aclose(self) -> None:
        return None


async def test_without_shell_an_agent_starting_an_mcp_command_is_refused_not_run() -> None:
    agent = _RecordingAgent()
    ex = Executor(registry, allow_shell=False, handlers={"agent": agent})
    stdio = {"prompt": "p", "mcp": [{"name": "calc", "command": ["calc-server"]}]}
    outcome = await ex.run(make_job("agent", stdio, job_id="stdio"), RecordingSink())
    assert not outcome.succeeded and not outcome.retryable
    assert outcome.error is not None and "shell is disabled" in outcome.error
    assert "MCP server command" in outcome.error
    http = {"prompt": "p", "mcp": [{"name": "calc", "url": "http://127.0.0.1:9/mcp"}]}
    assert (await ex.run(make_job("agent", http, job_id="http"), RecordingSink())).succeeded
    assert agent.ran == ["http"]
    await ex.aclose()


async def test_with_shell_allowed_an_agent_may_start_an_mcp_command() -> None:
    agent = _RecordingAgent()
    ex = Executor(registry, allow_shell=True, handlers={"agent": agent})
    stdio = {"prompt": "p", "mcp": [{"name": "calc", "command": ["calc-server"]}]}
    assert (await ex.run(make_job("agent", stdio), RecordingSink())).succeeded
    await ex.aclose()


def test_defaults_are_what_the_task_declared() -> None:
    assert Executor(registry).defaults("hangs") == KindDefaults(
        max_attempts=3, timeout_s=0.05, queue="slow"
    )


def test_defaults_are_none_for_builtins_and_tasks_that_declare_nothing() -> None:
    ex = Executor(registry)
    assert (ex.defaults("shell"), ex.defaults("add"), ex.defaults("missing")) == (None,) * 3


# --- built-in noop and sleep ----------------------------------------------------------------


async def test_noop_succeeds_without_a_result(executor: Executor) -> None:
    assert await executor.run(make_job("noop", {"any": "thing"}), RecordingSink()) == Outcome(
        succeeded=True
    )


async def test_unknown_kind_fails_without_retry(executor: Executor) -> None:
    outcome = await executor.run(make_job("nobody-serves-this"), RecordingSink())
    assert outcome == Outcome(
        succeeded=False, error="unknown kind 'nobody-serves-this' on this worker", retryable=False
    )


async def test_sleep_succeeds_after_its_seconds(executor: Executor) -> None:
    outcome = await executor.run(make_job("sleep", {"seconds": 0.01}), RecordingSink())
    assert outcome.succeeded


async def test_sleep_longer_than_its_timeout_times_out(executor: Executor) -> None:
    outcome = await executor.run(
        make_job("sleep", {"seconds": 60}, timeout_s=0.02), RecordingSink()
    )
    assert (outcome.succeeded, outcome.error, outcome.retryable) == (
        False,
        "timed out after 0.02s",
        True,
    )


async def test_sleep_is_cancellable(executor: Executor) -> None:
    run = asyncio.create_task(executor.run(make_job("sleep", {"seconds": 3600}), RecordingSink()))
    await asyncio.sleep(0)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run


async def test_a_bad_builtin_payload_fails_without_retry(executor: Executor) -> None:
    outcome = await executor.run(make_job("sleep", {"seconds": -1}), RecordingSink())
    assert (outcome.succeeded, outcome.retryable) == (False, False)
    assert outcome.error == "sleep payload: 'seconds' must be between 0 and 86400"


# --- async tasks ----------------------------------------------------------------------------


async def test_an_object_payload_becomes_keyword_arguments(executor: Executor) -> None:
    outcome = await executor.run(make_job("add", {"a": 2, "b": 3}), RecordingSink())
    assert outcome == Outcome(succeeded=True, result=5)


async def test_a_null_payload_calls_without_arguments(executor: Executor) -> None:
    outcome = await executor.run(make_job("no_arguments", None), RecordingSink())
    assert outcome.result == "none"


async def test_any_other_payload_is_one_positional_argument(executor: Executor) -> None:
    outcome = await executor.run(make_job("echo", [1, "two"]), RecordingSink())
    assert outcome.result == [1, "two"]


async def test_an_exception_becomes_a_retryable_failure_with_its_type(
    executor: Executor,
) -> None:
    sink = RecordingSink()
    outcome = await executor.run(make_job("fails"), sink)
    assert outcome == Outcome(succeeded=False, error="ValueError: bad input", retryable=True)
    assert "Traceback" in sink.stderr and "raise ValueError" in sink.stderr


async def test_a_permanent_error_fails_without_retry(executor: Executor) -> None:
    outcome = await executor.run(make_job("fails_for_good"), RecordingSink())
    assert (outcome.error, outcome.retryable) == (
        "PermanentError: the invoice does not exist",
        False,
    )


async def test_a_payload_the_signature_refuses_fails_without_retry(executor: Executor) -> None:
    outcome = await executor.run(make_job("add", {"a": 1, "c": 2}), RecordingSink())
    assert (outcome.succeeded, outcome.retryable) == (False, False)
    assert outcome.error is not None
    assert outcome.error.startswith("bad payload for task 'add': ")


async def test_a_result_that_is_not_json_fails_without_retry(executor: Executor) -> None:
    outcome = await executor.run(make_job("returns_a_set"), RecordingSink())
    assert (outcome.succeeded, outcome.retryable) == (False, False)
    assert outcome.error is not None
    assert outcome.error.startswith("result of task 'returns_a_set' is not JSON-serializable")


async def test_results_are_turned_into_plain_json_values(executor: Executor) -> None:
    outcome = await executor.run(make_job("returns_structures"), RecordingSink())
    assert outcome.result == {"pair": [1, 2], "point": {"x": 1, "y": 2}}


async def test_an_async_task_past_its_timeout_times_out(executor: Executor) -> None:
    outcome = await executor.run(make_job("hangs", timeout_s=0.02), RecordingSink())
    assert (outcome.error, outcome.retryable) == ("timed out after 0.02s", True)


async def test_the_timeout_declared_by_the_task_applies_when_the_job_has_none(
    executor: Executor,
) -> None:
    outcome = await executor.run(make_job("hangs"), RecordingSink())
    assert outcome.error == "timed out after 0.05s"


async def test_a_timeout_error_raised_by_the_task_is_an_ordinary_failure(
    executor: Executor,
) -> None:
    outcome = await executor.run(make_job("raises_its_own_timeout", timeout_s=60), RecordingSink())
    assert outcome.error == "TimeoutError: upstream took too long"


async def test_cancelling_the_run_cancels_the_coroutine_and_propagates(
    executor: Executor,
) -> None:
    coroutine_finalized.clear()
    run = asyncio.create_task(executor.run(make_job("hangs", timeout_s=3600), RecordingSink()))
    await asyncio.sleep(0)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert coroutine_finalized == ["hangs"]


async def test_an_async_task_sees_its_job_and_logs_to_stdout(executor: Executor) -> None:
    sink = RecordingSink()
    outcome = await executor.run(make_job("whoami", job_id="j-7", attempts=2), sink)
    assert outcome.result == {"job_id": "j-7", "attempt": 2, "tenant": "acme", "kind": "whoami"}
    assert sink.chunks == [(LogStream.STDOUT, "working\n")]


def test_current_job_outside_a_task_raises() -> None:
    with pytest.raises(RuntimeError, match="outside a faena task"):
        current_job()


# --- plain functions in threads -------------------------------------------------------------


async def test_a_plain_function_runs_in_a_thread_with_its_job_context(
    executor: Executor,
) -> None:
    sink = RecordingSink()
    outcome = await executor.run(make_job("in_thread", {"n": 4}, job_id="t-1"), sink)
    assert outcome.succeeded
    assert outcome.result["n"] == 4
    assert outcome.result["thread"] != threading.get_ident()
    assert sink.chunks == [(LogStream.STDOUT, "thread sees t-1\n")]


async def test_a_plain_function_past_its_timeout_times_out(executor: Executor) -> None:
    started.clear()
    outcome = await executor.run(make_job("blocks_in_thread", timeout_s=0.05), RecordingSink())
    assert started.is_set()
    assert outcome.error == "timed out after 0.05s"


async def test_an_exception_in_a_thread_becomes_a_failure(executor: Executor) -> None:
    outcome = await executor.run(make_job("fails_in_thread", {"text": "gone"}), RecordingSink())
    assert outcome.error == "KeyError: 'gone'"


# --- cpu=True tasks in the process pool -----------------------------------------------------


async def test_a_cpu_task_runs_in_another_process(cpu_executor: Executor) -> None:
    outcome = await cpu_executor.run(make_job("square_in_child", {"n": 7}), RecordingSink())
    assert outcome.succeeded
    assert outcome.result["square"] == 49
    assert outcome.result["pid"] != os.getpid()


async def test_what_a_cpu_task_prints_is_returned_as_its_log(cpu_executor: Executor) -> None:
    sink = RecordingSink()
    outcome = await cpu_executor.run(make_job("chatty", {"name": "ada"}, job_id="c-1"), sink)
    assert outcome.result == "ada"
    assert sink.stdout == "hello ada\njob c-1 attempt 1\n"


async def test_an_exception_in_a_cpu_task_becomes_a_failure(cpu_executor: Executor) -> None:
    sink = RecordingSink()
    outcome = await cpu_executor.run(make_job("explode"), sink)
    assert (outcome.error, outcome.retryable) == ("ValueError: bad input in the child", True)
    assert "Traceback" in sink.stderr


async def test_a_cpu_task_result_that_is_not_json_fails_without_retry(
    cpu_executor: Executor,
) -> None:
    outcome = await cpu_executor.run(make_job("returns_bytes"), RecordingSink())
    assert (outcome.succeeded, outcome.retryable) == (False, False)
    assert outcome.error is not None
    assert "not JSON-serializable" in outcome.error


async def test_a_cpu_task_past_its_timeout_times_out_and_is_abandoned(
    cpu_executor: Executor,
) -> None:
    outcome = await cpu_executor.run(
        make_job("spin", {"seconds": 60}, timeout_s=0.5), RecordingSink()
    )
    assert outcome.error == "timed out after 0.5s"


async def test_a_cpu_task_defined_in_a_function_is_refused() -> None:
    local_registry = TaskRegistry()

    @task(cpu=True, registry=local_registry)
    def local() -> None:
        return None

    ex = Executor(local_registry)
    outcome = await ex.run(make_job("local"), RecordingSink())
    await ex.aclose()
    assert (outcome.succeeded, outcome.retryable) == (False, False)
    assert outcome.error is not None and "module level" in outcome.error


def test_the_worker_package_exports_its_public_names() -> None:
    import faena.worker

    assert sorted(faena.worker.__all__) == [
        "BUILTIN_KINDS",
        "ExecutionSink",
        "Executor",
        "JobContext",
        "KindDefaults",
        "Outcome",
        "PermanentError",
        "Task",
        "TaskRegistry",
        "current_job",
        "default_registry",
        "task",
        "validate_payload",
    ]
