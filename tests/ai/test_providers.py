"""The provider adapters against a local server speaking each wire protocol."""

from __future__ import annotations

import pytest

from faena.adapters.llm import AnthropicProvider, OpenAIProvider
from faena.domain.llm import (
    ChatRequest,
    Message,
    ModelPrice,
    ProviderConfig,
    ProviderError,
    ToolCall,
    ToolSpec,
)
from faena.ports.llm import ProviderCall
from tests.ai.providers import Fail, FakeProvider, Reply

KINDS = ["openai", "anthropic"]


def _call(
    fake: FakeProvider, kind: str, *, stream: bool, timeout_s: float = 5.0, **req: object
) -> ProviderCall:
    url = fake.openai_url if kind == "openai" else fake.anthropic_url
    config = ProviderConfig(
        "t", "p", kind, url, models={"m": ModelPrice(1, 2)}, timeout_s=timeout_s
    )
    request = ChatRequest(
        messages=(Message("system", "be brief"), Message("user", "hello there")),
        **req,  # type: ignore[arg-type]
    )
    return ProviderCall(config, "m", request, "sk-test", stream=stream)


def _adapter(kind: str) -> OpenAIProvider | AnthropicProvider:
    return OpenAIProvider() if kind == "openai" else AnthropicProvider()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [False, True])
async def test_a_text_answer_with_its_token_counts(
    fake: FakeProvider, kind: str, stream: bool
) -> None:
    fake.script(Reply("The answer is forty-two."))
    adapter = _adapter(kind)
    tokens: list[str] = []
    try:
        reply = await adapter.complete(_call(fake, kind, stream=stream), tokens.append)
    finally:
        await adapter.aclose()
    assert reply.content == "The answer is forty-two."
    assert reply.tokens_in > 0 and reply.tokens_out == len("The answer is forty-two.") // 4
    if stream:
        assert len(tokens) > 3 and "".join(tokens) == reply.content
    else:
        assert tokens == []


async def test_openai_wire_format_carries_key_model_and_schema(fake: FakeProvider) -> None:
    adapter = OpenAIProvider()
    schema = {"type": "object"}
    try:
        await adapter.complete(_call(fake, "openai", stream=True, response_schema=schema))
    finally:
        await adapter.aclose()
    body, headers = fake.requests[0], fake.headers[0]
    assert headers["authorization"] == "Bearer sk-test"
    assert body["model"] == "m" and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert body["response_format"]["json_schema"]["schema"] == schema


async def test_anthropic_wire_format_lifts_the_system_prompt(fake: FakeProvider) -> None:
    adapter = AnthropicProvider()
    try:
        await adapter.complete(_call(fake, "anthropic", stream=False))
    finally:
        await adapter.aclose()
    body, headers = fake.requests[0], fake.headers[0]
    assert headers["x-api-key"] == "sk-test" and headers["anthropic-version"] == "2023-06-01"
    assert body["system"] == "be brief"
    assert body["messages"] == [{"role": "user", "content": "hello there"}]
    assert body["max_tokens"] == 1024


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [False, True])
async def test_tool_calls_are_parsed(fake: FakeProvider, kind: str, stream: bool) -> None:
    fake.script(Reply(tool_calls=[("lookup", {"city": "Madrid", "days": 3})]))
    adapter = _adapter(kind)
    tool = ToolSpec("lookup", "weather", {"type": "object"})
    try:
        reply = await adapter.complete(_call(fake, kind, stream=stream, tools=(tool,)))
    finally:
        await adapter.aclose()
    assert reply.content is None
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [
        ("lookup", {"city": "Madrid", "days": 3})
    ]
    sent = fake.requests[0]["tools"][0]
    assert (sent["function"]["name"] if kind == "openai" else sent["name"]) == "lookup"


@pytest.mark.parametrize("kind", KINDS)
async def test_tool_results_go_back_in_each_protocols_shape(fake: FakeProvider, kind: str) -> None:
    adapter = _adapter(kind)
    call = _call(fake, kind, stream=False)
    history = (
        Message("user", "weather?"),
        Message("assistant", None, (ToolCall("c1", "lookup", {"city": "Oslo"}),)),
        Message("tool", "rain", tool_call_id="c1"),
    )
    call = ProviderCall(call.config, "m", ChatRequest(history), None)
    try:
        await adapter.complete(call)
    finally:
        await adapter.aclose()
    msgs = fake.requests[0]["messages"]
    if kind == "openai":
        assert msgs[1]["tool_calls"][0]["function"]["name"] == "lookup"
        assert msgs[2] == {"role": "tool", "content": "rain", "tool_call_id": "c1"}
    else:
        assert msgs[1]["content"][0] == {
            "type": "tool_use",
            "id": "c1",
            "name": "lookup",
            "input": {"city": "Oslo"},
        }
        assert msgs[2]["content"][0]["type"] == "tool_result"


@pytest.mark.parametrize("kind", KINDS)
async def test_429_is_retryable_with_its_retry_after(fake: FakeProvider, kind: str) -> None:
    fake.script(Fail(429, retry_after=7, message="slow down"))
    adapter = _adapter(kind)
    try:
        with pytest.raises(ProviderError) as caught:
            await adapter.complete(_call(fake, kind, stream=True))
    finally:
        await adapter.aclose()
    assert caught.value.status == 429 and caught.value.retryable
    assert caught.value.retry_after == 7
    assert "slow down" in caught.value.message


@pytest.mark.parametrize("kind", KINDS)
async def test_a_400_is_not_retryable(fake: FakeProvider, kind: str) -> None:
    fake.script(Fail(400, message="bad model"))
    adapter = _adapter(kind)
    try:
        with pytest.raises(ProviderError) as caught:
            await adapter.complete(_call(fake, kind, stream=False))
    finally:
        await adapter.aclose()
    assert caught.value.status == 400 and not caught.value.retryable


@pytest.mark.parametrize("kind", KINDS)
async def test_a_slow_provider_times_out_retryably(fake: FakeProvider, kind: str) -> None:
    fake.script(Fail(200, hang_s=2))
    adapter = _adapter(kind)
    try:
        with pytest.raises(ProviderError) as caught:
            await adapter.complete(_call(fake, kind, stream=True, timeout_s=0.2))
    finally:
        await adapter.aclose()
    assert caught.value.retryable and "timed out" in caught.value.message


async def test_an_unreachable_provider_is_retryable() -> None:
    adapter = OpenAIProvider()
    config = ProviderConfig("t", "p", "openai", "http://127.0.0.1:9/v1", timeout_s=1)
    try:
        with pytest.raises(ProviderError) as caught:
            await adapter.complete(
                ProviderCall(config, "m", ChatRequest((Message("user", "x"),)), None)
            )
    finally:
        await adapter.aclose()
    assert caught.value.retryable and "unreachable" in caught.value.message
