"""What the streamed log shows matches what happened: a rejected answer that is re-asked or
escalated, and an attempt that failed mid-stream, are followed by a ``--- ... ---`` line; tokens
are batched per 50 ms; a half-open provider breaker lets exactly one probe through."""

from __future__ import annotations

import asyncio

import pytest

from faena.adapters.memory.store import MemoryStore
from faena.domain.llm import ChatRequest, Message, Tier
from faena.domain.logs import LogStream
from faena.services.llm_kind import FLUSH_CHARS, _TokenBuffer
from faena.services.llm_routing import ProviderBreaker
from tests.ai.providers import Fail, FakeProvider, Reply
from tests.ai.support import llm_service, policy, provider

SCHEMA = {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]}


def ask(text: str = "What is the total?", **kw: object) -> ChatRequest:
    return ChatRequest((Message("user", text),), **kw)  # type: ignore[arg-type]


@pytest.fixture
async def store() -> MemoryStore:
    return MemoryStore()


async def test_a_reasked_answer_is_marked(store: MemoryStore, fake: FakeProvider) -> None:
    await store.put_llm_provider(provider(fake))
    fake.script(Reply("not json"), Reply('{"total": 1}'))
    tokens: list[str] = []
    async with llm_service(store, max_reasks=1) as (service, _):
        result = await service.chat(
            "t1", ask(model="a/cheap", response_schema=SCHEMA), on_token=tokens.append
        )
    assert result.output == {"total": 1}
    assert "".join(tokens) == 'not json\n--- re-ask (the answer is not JSON) ---\n{"total": 1}'


async def test_an_escalation_and_a_final_rejection_are_marked(
    store: MemoryStore, fake: FakeProvider
) -> None:
    await store.put_llm_provider(provider(fake))
    await store.put_llm_policy(policy("tiered", Tier("a/cheap"), Tier("a/strong")))
    fake.default = Reply("prose")
    tokens: list[str] = []
    async with llm_service(store, max_reasks=0) as (service, _):
        with pytest.raises(Exception, match="failed validation after 2 tries"):
            await service.chat(
                "t1", ask(policy="tiered", response_schema=SCHEMA), on_token=tokens.append
            )
    assert "".join(tokens) == (
        "prose\n--- rejected (the answer is not JSON); escalated to a/strong ---\n"
        "prose\n--- rejected (the answer is not JSON) ---\n"
    )


async def test_an_attempt_cut_mid_stream_is_marked_before_the_retry(
    store: MemoryStore, fake: FakeProvider
) -> None:
    await store.put_llm_provider(provider(fake, max_retries=1))
    fake.script(Reply("The total is twelve.", cut_after=2), Reply("The total is 12."))
    tokens: list[str] = []
    async with llm_service(store) as (service, sleeps):
        result = await service.chat("t1", ask(model="a/cheap"), on_token=tokens.append)
    text = "".join(tokens)
    assert result.content == "The total is 12." and fake.calls == 2 and sleeps.waits
    first, mark, second = text.split("\n", 2)
    assert first == "The tota"  # two pieces of four characters, then the cut
    assert mark.startswith("--- attempt failed (") and mark.endswith("; retrying a/cheap ---")
    assert second == "The total is 12."


async def test_no_mark_when_nothing_was_streamed(store: MemoryStore, fake: FakeProvider) -> None:
    await store.put_llm_provider(provider(fake, max_retries=1))
    fake.script(Fail(500), Reply("fine"))
    tokens: list[str] = []
    async with llm_service(store) as (service, _):
        await service.chat("t1", ask(model="a/cheap"), on_token=tokens.append)
    assert "".join(tokens) == "fine"


class _Sink:
    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.written = asyncio.Event()

    def log(self, stream: LogStream, data: str) -> None:
        assert stream is LogStream.STDOUT
        self.chunks.append(data)
        self.written.set()


async def test_tokens_are_batched_until_the_timer_or_a_full_buffer() -> None:
    sink = _Sink()
    buffer = _TokenBuffer(sink, flush_s=0)
    for token in ("a", "b", "c"):
        buffer(token)
    assert sink.chunks == []  # not yet: within the batching window
    await asyncio.wait_for(sink.written.wait(), 5)  # the timer writes: no next token needed
    assert sink.chunks == ["abc"]
    buffer("x" * FLUSH_CHARS)  # a full buffer goes out at once
    assert sink.chunks[-1] == "x" * FLUSH_CHARS
    buffer("tail")
    buffer.flush()  # the end of the answer
    assert sink.chunks[-1] == "tail"
    for _ in range(3):
        await asyncio.sleep(0)
    assert len(sink.chunks) == 3  # the cancelled timer wrote nothing more


def test_a_half_open_breaker_lets_one_probe_through() -> None:
    breaker = ProviderBreaker()
    breaker.failed(0.0, 1, 10.0)
    assert not breaker.allows(5.0)  # open
    assert breaker.allows(10.0)  # half-open: this caller probes
    assert not breaker.allows(10.0) and not breaker.allows(11.0)  # the others skip it
    breaker.failed(12.0, 1, 10.0)  # the probe failed: open again
    assert not breaker.allows(15.0)
    assert breaker.allows(22.0)
    breaker.released()  # a probe that ended without an outcome (cancelled)
    assert breaker.allows(22.0)
    breaker.succeeded()
    assert breaker.allows(22.0) and breaker.allows(22.0)  # closed: everyone


async def test_concurrent_calls_on_a_half_open_breaker_send_one_probe(
    store: MemoryStore, fake: FakeProvider, fake2: FakeProvider
) -> None:
    await store.put_llm_provider(provider(fake, "a"))
    await store.put_llm_provider(provider(fake2, "b"))
    await store.put_llm_policy(policy("default", Tier("a/cheap", ("b/cheap",))))
    fake.script(Fail(500))
    # reset 0 s: half-open as soon as it opened
    async with llm_service(store, breaker_failures=1, breaker_reset_s=0.0) as (service, _):
        assert (await service.chat("t1", ask())).provider == "b"  # a failed: open
        fake.default = Reply("slow probe", delay_s=0.3)
        results = await asyncio.gather(*(service.chat("t1", ask()) for _ in range(5)))
        assert sorted(r.provider for r in results) == ["a", "b", "b", "b", "b"]
        assert fake.calls == 2  # the failure and one probe, not five
        assert (await service.chat("t1", ask())).provider == "a"  # the probe closed it


async def test_a_cancelled_probe_lets_the_next_call_probe(
    store: MemoryStore, fake: FakeProvider, fake2: FakeProvider
) -> None:
    await store.put_llm_provider(provider(fake, "a"))
    await store.put_llm_provider(provider(fake2, "b"))
    await store.put_llm_policy(policy("default", Tier("a/cheap", ("b/cheap",))))
    fake.script(Fail(500), Reply("never read", delay_s=5))
    async with llm_service(store, breaker_failures=1, breaker_reset_s=0.0) as (service, _):
        await service.chat("t1", ask())
        probe = asyncio.create_task(service.chat("t1", ask()))
        await fake.wait_calls(2)  # the probe reached provider a
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        assert (await service.chat("t1", ask())).provider == "a"  # probed again, and closed
