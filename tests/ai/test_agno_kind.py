"""The ``agno`` kind (``faena[agno]``): a real Agno agent whose model is the tenant's LLM
provider (the local fake server, OpenAI and Anthropic wire formats) and whose tools are faena
kinds run as child jobs; bad payloads and a missing extra are refused at submit."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from faena.bootstrap import Runtime, build_runtime
from faena.config import Settings
from faena.domain.errors import ValidationError
from faena.domain.jobs import DEFAULT_TENANT, Job
from faena.domain.llm import Budget, ModelPrice, ProviderConfig
from faena.services.orchestrator import JobRequest
from tests.ai.agent_support import ADMIN_KEY, agent_runtime, executions, registry
from tests.ai.providers import Fail, FakeProvider, Reply

__all__ = ["agent_runtime"]
pytest.importorskip("agno", reason="the agno extra (pip install 'faena[agno]')")


async def run_agno(runtime: Runtime, payload: dict[str, Any], *, max_attempts: int = 1) -> Job:
    (submitted,) = await runtime.orchestrator.submit(
        DEFAULT_TENANT, [JobRequest("agno", payload, max_attempts=max_attempts)]
    )
    return await runtime.orchestrator.wait(DEFAULT_TENANT, submitted.job.id, 20)


async def logs_of(runtime: Runtime, job_id: str) -> str:
    await runtime.logs.drain()
    found = await runtime.orchestrator.read_logs(DEFAULT_TENANT, job_id)
    return "".join(c.chunk.data for c in found if c.chunk.stream.value == "stdout")


async def test_a_plain_answer_is_the_result_and_each_call_is_recorded(
    agent_runtime: Runtime, fake: FakeProvider
) -> None:
    fake.script(Reply(text="Hello, Ada."))
    job = await run_agno(
        agent_runtime,
        {"model": "fake/m", "instructions": "Greet by name.", "input": "I am Ada."},
    )
    assert job.state.value == "succeeded", job.error
    assert job.result["content"] == "Hello, Ada."
    assert job.result["model"] == "fake/m" and job.result["steps"] == 1
    (request,) = fake.requests
    assert request["model"] == "m"
    assert request["messages"][0] == {"role": "system", "content": "Greet by name."}
    assert request["messages"][-1] == {"role": "user", "content": "I am Ada."}
    # The provider has no api_key_secret: a placeholder goes out, never the server's env.
    assert fake.headers[0]["authorization"] == "Bearer no-key-configured"
    # The call's tokens and cost (the provider's price: $1 a token) are faena's LLM records.
    usage = job.result["usage"]
    assert usage["tokens_in"] > 0 and usage["tokens_out"] == 2
    assert usage["cost_usd"] == usage["tokens_in"] + usage["tokens_out"]
    (call,) = await agent_runtime.store.list_llm_calls(DEFAULT_TENANT, job.id)  # type: ignore[attr-defined]
    assert (call.provider, call.model, call.call_index) == ("fake", "m", 0)
    assert call.cost == usage["cost_usd"] and call.response["content"] == "Hello, Ada."
    assert "Hello, Ada." in await logs_of(agent_runtime, job.id)  # streamed into the log


async def test_a_tool_call_runs_as_a_child_job_and_its_result_reaches_the_model(
    agent_runtime: Runtime, fake: FakeProvider
) -> None:
    fake.script(Reply(tool_calls=[("double", {"x": 21})]), Reply(text="21 doubled is 42."))
    job = await run_agno(
        agent_runtime, {"model": "m", "input": "What is 21 doubled?", "tools": ["double"]}
    )
    assert job.state.value == "succeeded", job.error
    assert job.result["content"] == "21 doubled is 42." and job.result["steps"] == 2
    (record,) = job.result["tool_calls"]
    assert (record["tool"], record["arguments"], record["state"]) == (
        "double",
        {"x": 21},
        "succeeded",
    )
    child = await agent_runtime.orchestrator.get(DEFAULT_TENANT, record["job_id"])
    assert (child.kind, child.parent_id, child.result) == ("double", job.id, 42)
    assert child.idempotency_key is not None and child.idempotency_key.startswith(
        f"agno:{job.id}:0:"
    )
    assert executions == [("double", 21)]
    # The model was offered the task's docstring and schema, then read the child's result.
    (tool,) = fake.requests[0]["tools"]
    assert tool["function"]["name"] == "double"
    assert tool["function"]["description"] == "Double a number."
    assert tool["function"]["parameters"]["properties"] == {"x": {"type": "integer"}}
    tool_message = fake.requests[1]["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["content"] == "42"
    calls = await agent_runtime.store.list_llm_calls(DEFAULT_TENANT, job.id)  # type: ignore[attr-defined]
    assert [c.call_index for c in calls] == [0, 1]


async def test_the_anthropic_wire_format_carries_tool_use(
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
        Reply(tool_calls=[("lookup_customer", {"name": "Ada"})]), Reply(text="Ada is customer 7.")
    )
    job = await run_agno(
        agent_runtime,
        {"model": "claude/haiku", "input": "Find Ada.", "tools": ["lookup_customer"]},
    )
    assert job.state.value == "succeeded", job.error
    assert job.result["content"] == "Ada is customer 7."
    first, second = fake.requests
    assert first["model"] == "haiku" and first["tools"][0]["name"] == "lookup_customer"
    result_block = second["messages"][-1]["content"][0]
    assert result_block["type"] == "tool_result"
    assert orjson.loads(result_block["content"])["id"] == 7


async def test_a_bad_payload_is_refused_at_submit(agent_runtime: Runtime) -> None:
    bad = [
        ({"model": "fake/m"}, "agno input must be a non-empty string"),
        ({"input": "hi"}, "agno model must be a non-empty string"),
        ({"model": "m", "input": "hi", "tools": ["shell"]}, "'shell' cannot be an agno tool"),
        ({"model": "m", "input": "hi", "api_key": "sk-x"}, "unknown agno field 'api_key'"),
        ({"model": "m", "input": "hi", "max_steps": 0}, "agno max_steps must be between 1"),
    ]
    for payload, message in bad:
        with pytest.raises(ValidationError, match=message):
            await agent_runtime.orchestrator.submit(DEFAULT_TENANT, [JobRequest("agno", payload)])


async def test_a_provider_error_fails_the_job_with_the_providers_message(
    agent_runtime: Runtime, fake: FakeProvider
) -> None:
    fake.script(Fail(500, message="the model is overloaded"))
    job = await run_agno(agent_runtime, {"model": "fake/m", "input": "Hi"})
    assert job.state.value == "failed"
    assert job.error is not None
    assert "calling fake/m" in job.error and "the model is overloaded" in job.error


async def test_an_unknown_model_fails_without_calling_anyone(
    agent_runtime: Runtime, fake: FakeProvider
) -> None:
    job = await run_agno(agent_runtime, {"model": "nobody/m", "input": "Hi"})
    assert job.state.value == "failed"
    assert job.error == "model 'nobody/m': no provider named 'nobody' is configured"
    assert fake.calls == 0


async def test_an_exhausted_budget_stops_the_agent_before_a_model_call(
    agent_runtime: Runtime, fake: FakeProvider
) -> None:
    await agent_runtime.store.put_llm_budget(  # type: ignore[attr-defined]
        Budget(DEFAULT_TENANT, "tenant", "*", 0.0, period="total", updated_at=1.0)
    )
    job = await run_agno(agent_runtime, {"model": "fake/m", "input": "Hi"})
    assert job.state.value == "failed"
    assert job.error is not None and "LLM budget is exhausted" in job.error
    assert fake.calls == 0


async def test_max_steps_stops_a_model_that_keeps_calling_tools(
    agent_runtime: Runtime, fake: FakeProvider
) -> None:
    fake.default = Reply(tool_calls=[("double", {"x": 1})])
    job = await run_agno(
        agent_runtime, {"model": "fake/m", "input": "Loop", "tools": ["double"], "max_steps": 2}
    )
    assert job.state.value == "failed"
    assert job.error == "agno agent stopped: max_steps (2) reached without an answer"
    assert fake.calls == 2 and job.result["steps"] == 2


async def test_without_the_extra_a_submit_names_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "agno", None)  # as if agno were not installed
    runtime = build_runtime(
        Settings(database_url="memory://", home=tmp_path, bootstrap_key=ADMIN_KEY),
        registry=registry,
    )
    await runtime.start()
    try:
        with pytest.raises(ValidationError, match=r"pip install 'faena\[agno\]'"):
            await runtime.orchestrator.submit(
                DEFAULT_TENANT, [JobRequest("agno", {"model": "m", "input": "hi"})]
            )
    finally:
        await runtime.stop()


async def test_a_response_schema_gives_the_parsed_output_and_refuses_a_mismatch(
    agent_runtime: Runtime, fake: FakeProvider
) -> None:
    schema = {
        "type": "object",
        "properties": {"total": {"type": "number"}},
        "required": ["total"],
    }
    payload = {"model": "fake/m", "input": "Total of 2 and 3?", "response_schema": schema}
    fake.script(Reply(text='{"total": 5}'), Reply(text='{"sum": 5}'))
    job = await run_agno(agent_runtime, payload)
    assert job.state.value == "succeeded", job.error
    assert job.result["output"] == {"total": 5}
    assert fake.requests[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema},
    }
    job = await run_agno(agent_runtime, payload)
    assert job.state.value == "failed"
    assert job.error is not None and "does not match response_schema" in job.error


async def test_timeout_s_stops_a_run_whose_model_does_not_answer(
    agent_runtime: Runtime, fake: FakeProvider
) -> None:
    fake.script(Reply(text="too late", delay_s=1.0))
    job = await run_agno(agent_runtime, {"model": "fake/m", "input": "Hi", "timeout_s": 0.3})
    assert job.state.value == "failed"
    assert job.error == "agno agent stopped: timeout_s (0.3 s) reached"
