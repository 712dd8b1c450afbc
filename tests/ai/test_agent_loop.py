"""The ``agent`` kind against the local fake provider (OpenAI tool-call format): tool calls
become child jobs, limits stop the loop, a retry reuses finished steps."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from faena.bootstrap import Runtime
from faena.domain.errors import ValidationError
from faena.domain.jobs import DEFAULT_TENANT
from faena.services.orchestrator import JobRequest
from tests.ai.agent_support import agent_runtime, executions, run_agent
from tests.ai.providers import Fail, FakeProvider, Reply

__all__ = ["agent_runtime"]


async def test_a_tool_call_runs_as_a_child_job(agent_runtime: Runtime, fake: FakeProvider) -> None:
    fake.script(Reply(tool_calls=[("double", {"x": 21})]), Reply(text="The answer is 42."))
    job = await run_agent(
        agent_runtime, {"prompt": "What is 21 doubled?", "model": "fake/m", "tools": ["double"]}
    )
    assert job.state.value == "succeeded", job.error
    assert job.result["answer"] == "The answer is 42."
    assert job.result["steps"] == 2
    (call,) = job.result["tool_calls"]
    assert call["tool"] == "double" and call["state"] == "succeeded"
    child = await agent_runtime.orchestrator.get(DEFAULT_TENANT, call["job_id"])
    assert child.kind == "double" and child.result == 42
    assert child.idempotency_key == f"agent:{job.id}:0:0"
    assert executions == [("double", 21)]
    # The model saw the task's schema and docstring, then the tool's result.
    tools = fake.requests[0]["tools"]
    assert tools[0]["function"]["name"] == "double"
    assert tools[0]["function"]["description"] == "Double a number."
    assert tools[0]["function"]["parameters"]["properties"] == {"x": {"type": "integer"}}
    tool_message = fake.requests[1]["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["content"] == "42"


async def test_parallel_tool_calls_and_tool_errors_go_back_to_the_model(
    agent_runtime: Runtime, fake: FakeProvider
) -> None:
    fake.script(
        Reply(
            tool_calls=[
                ("lookup_customer", {"name": "Ada"}),
                ("explode", {"reason": "disk full"}),
                ("nope", {}),
            ]
        ),
        Reply(text="Ada is customer 7; the export failed."),
    )
    job = await run_agent(
        agent_runtime,
        {"prompt": "Find Ada", "model": "fake/m", "tools": ["lookup_customer", "explode"]},
    )
    assert job.state.value == "succeeded", job.error
    calls = {c["tool"]: c for c in job.result["tool_calls"]}
    assert calls["lookup_customer"]["state"] == "succeeded"
    assert "disk full" in calls["explode"]["error"]
    assert calls["nope"]["error"] == "unknown tool 'nope'"
    contents = [m["content"] for m in fake.requests[1]["messages"] if m["role"] == "tool"]
    assert orjson.loads(contents[0]) == {"name": "Ada", "id": 7, "active": True}
    assert "disk full" in orjson.loads(contents[1])["error"]


async def test_max_steps_stops_the_loop(agent_runtime: Runtime, fake: FakeProvider) -> None:
    fake.default = Reply(tool_calls=[("double", {"x": 1})])
    job = await run_agent(
        agent_runtime,
        {"prompt": "loop", "model": "fake/m", "tools": ["double"], "max_steps": 3},
        max_attempts=3,
    )
    assert job.state.value == "failed"
    assert job.error == "agent stopped: max_steps (3) reached without an answer"
    assert job.attempts == 1  # a limit is not retried
    assert fake.calls == 3 and len(executions) == 3


async def test_max_cost_stops_the_loop(agent_runtime: Runtime, fake: FakeProvider) -> None:
    fake.default = Reply(tool_calls=[("double", {"x": 1})])
    job = await run_agent(
        agent_runtime,
        {"prompt": "loop", "model": "fake/m", "tools": ["double"], "max_cost": 1.0},
    )
    assert job.state.value == "failed"
    assert job.error is not None and job.error.startswith("agent stopped: max_cost (1)")
    assert fake.calls == 1  # one call already costs more than $1 at $1 per token


async def test_time_limit_stops_the_loop(agent_runtime: Runtime, fake: FakeProvider) -> None:
    fake.default = Reply(text="late", delay_s=5)
    job = await run_agent(agent_runtime, {"prompt": "slow", "model": "fake/m", "time_limit_s": 0.5})
    assert job.state.value == "failed"
    assert job.error == "agent stopped: time_limit_s (0.5 s) reached"


async def test_a_retry_reuses_finished_calls_and_tool_jobs(
    agent_runtime: Runtime, fake: FakeProvider
) -> None:
    fake.script(
        Reply(tool_calls=[("double", {"x": 5})]),
        Fail(500),  # the second model call fails: the attempt fails, retryably
        Reply(text="10"),
    )
    job = await run_agent(
        agent_runtime,
        {"prompt": "double 5", "model": "fake/m", "tools": ["double"]},
        max_attempts=2,
    )
    assert job.state.value == "succeeded", job.error
    assert job.attempts == 2
    assert job.result["answer"] == "10"
    assert executions == [("double", 5)]  # the child job of step 0 was reused, not rerun
    assert fake.calls == 3  # step 0's model call was replayed from its record


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "agent prompt must be a non-empty string"),
        ({"prompt": "x", "tools": ["shell"]}, "'shell' cannot be an agent tool"),
        ({"prompt": "x", "max_steps": 0}, "agent max_steps must be between 1 and 100"),
        ({"prompt": "x", "mcp": [{"name": "a"}]}, "needs exactly one of command"),
        ({"prompt": "x", "colour": "red"}, "unknown agent field 'colour'"),
    ],
)
async def test_a_bad_payload_is_refused_at_submit(
    agent_runtime: Runtime, payload: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        await agent_runtime.orchestrator.submit(DEFAULT_TENANT, [JobRequest("agent", payload)])


async def test_an_unknown_tool_kind_fails_clearly(
    agent_runtime: Runtime, fake: FakeProvider
) -> None:
    job = await run_agent(agent_runtime, {"prompt": "x", "model": "fake/m", "tools": ["ghost"]})
    assert job.state.value == "failed"
    assert job.error == "agent tool 'ghost' is not a kind any worker serves"
