"""The ``agent`` kind against the local fake provider (OpenAI and Anthropic tool-call formats):
tool calls become child jobs, limits stop the loop (``max_cost`` as a ceiling), a retry reuses
finished steps."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from faena.bootstrap import Runtime
from faena.domain.errors import ValidationError
from faena.domain.jobs import DEFAULT_TENANT
from faena.domain.llm import ModelPrice, ProviderConfig
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


async def test_the_loop_speaks_anthropics_tool_use_format(
    agent_runtime: Runtime, fake: FakeProvider
) -> None:
    await agent_runtime.store.put_llm_provider(  # type: ignore[attr-defined]
        ProviderConfig(
            DEFAULT_TENANT,
            "claude",
            "anthropic",
            fake.anthropic_url,
            models={"haiku": ModelPrice()},
        )
    )
    fake.script(
        Reply(tool_calls=[("double", {"x": 21}), ("lookup_customer", {"name": "Ada"})]),
        Reply(text="42, and Ada is customer 7."),
    )
    job = await run_agent(
        agent_runtime,
        {
            "prompt": "Double 21 and find Ada.",
            "system": "You are terse.",
            "model": "claude/haiku",
            "tools": ["double", "lookup_customer"],
        },
    )
    assert job.state.value == "succeeded", job.error
    assert job.result["answer"] == "42, and Ada is customer 7."
    assert {c["tool"]: c["state"] for c in job.result["tool_calls"]} == {
        "double": "succeeded",
        "lookup_customer": "succeeded",
    }
    first, second = fake.requests
    assert first["system"] == "You are terse." and first["max_tokens"] > 0
    assert [t["name"] for t in first["tools"]] == ["double", "lookup_customer"]
    assert first["tools"][0]["input_schema"]["properties"] == {"x": {"type": "integer"}}
    assert first["tools"][0]["description"] == "Double a number."
    user, assistant, results = second["messages"]
    assert user == {"role": "user", "content": "Double 21 and find Ada."}
    assert assistant["role"] == "assistant"
    assert [(b["type"], b["name"], b["input"]) for b in assistant["content"]] == [
        ("tool_use", "double", {"x": 21}),
        ("tool_use", "lookup_customer", {"name": "Ada"}),
    ]
    # Both results in one user turn, each a tool_result naming its tool_use.
    assert results["role"] == "user"
    assert [(b["type"], b["tool_use_id"]) for b in results["content"]] == [
        ("tool_result", assistant["content"][0]["id"]),
        ("tool_result", assistant["content"][1]["id"]),
    ]
    assert results["content"][0]["content"] == "42"
    assert orjson.loads(results["content"][1]["content"])["id"] == 7


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


async def test_max_cost_stops_before_a_call_it_cannot_afford(
    agent_runtime: Runtime, fake: FakeProvider
) -> None:
    fake.default = Reply(tool_calls=[("double", {"x": 1})])
    job = await run_agent(
        agent_runtime,
        {"prompt": "loop", "model": "fake/m", "tools": ["double"], "max_cost": 1.0},
    )
    assert job.state.value == "failed"
    assert job.error is not None and job.error.startswith("agent stopped: max_cost (1) reached")
    assert fake.calls == 0  # at $1 a token, the prompt alone would cost more than $1


async def test_max_cost_is_a_ceiling_not_overshot_by_a_call(
    agent_runtime: Runtime, fake: FakeProvider
) -> None:
    """The agent never starts a call whose estimated prompt cost plus 16 tokens of answer does
    not fit, and caps each call's max_tokens to what is left: the spending stays under it."""
    fake.default = Reply(tool_calls=[("double", {"x": 1})])  # a loop that never answers
    job = await run_agent(
        agent_runtime,
        {"prompt": "loop", "model": "fake/m", "tools": ["double"], "max_cost": 100.0},
    )
    assert job.state.value == "failed"
    assert job.error is not None and "agent stopped: max_cost (100) reached" in job.error
    assert fake.calls >= 3  # it ran until the next call could not fit
    assert job.result["cost"] <= 100.0  # was: stopped only once past it, by up to a call
    calls = await agent_runtime.llm.calls(DEFAULT_TENANT, job.id)  # type: ignore[union-attr]
    spent = 0.0
    for record, request in zip(calls, fake.requests, strict=True):
        assert request["max_tokens"] <= 100.0 - spent  # $1 a token: only what was left
        spent += record.cost
    assert job.result["cost"] == pytest.approx(spent)


async def test_max_cost_caps_a_long_answer(agent_runtime: Runtime, fake: FakeProvider) -> None:
    fake.default = Reply(text="x" * 400)  # 100 tokens if let
    job = await run_agent(
        agent_runtime,
        {"prompt": "write", "model": "fake/m", "tools": ["double"], "max_cost": 60.0},
    )
    assert job.state.value == "succeeded", job.error
    (request,) = fake.requests
    assert 16 <= request["max_tokens"] < 60
    assert job.result["cost"] <= 60.0 and len(job.result["answer"]) == request["max_tokens"] * 4


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
