"""The LLM answer cache through the ``llm`` kind, with the real all-MiniLM-L6-v2 embedder: exact
match of the whole request by default (two e-mails that differ in names and dates embed at
~0.98 cosine and must each be answered), similarity hits only for steps that opt in, and never
across a different system prompt, schema or model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from faena.adapters.memory.store import MemoryStore
from faena.bootstrap import Runtime, build_runtime
from faena.config import Settings
from faena.domain.errors import ValidationError
from faena.domain.jobs import DEFAULT_TENANT, Job, JobState
from faena.domain.llm import (
    ChatRequest,
    Message,
    ModelPrice,
    ProviderConfig,
    RoutingPolicy,
    SemanticMatch,
    Tier,
)
from faena.domain.llm_parse import parse_chat
from faena.services.orchestrator import JobRequest
from faena.services.semantic_cache import SemanticCache
from tests.ai.providers import FakeProvider, Reply
from tests.ai.support import llm_service, provider

EXAMPLE = Path(__file__).parents[2] / "examples" / "commitments" / "workflow.yaml"
T = DEFAULT_TENANT
FRANCE = "What is the capital of France?"
FRANCE_AGAIN = "What's the capital of France?"  # 0.99 cosine to FRANCE with MiniLM
# With the example's system prompt, the old cache text of these two embeds at 0.970 cosine.
ANA = (
    "Hi team, Ana will send the signed contract by Friday 6 March. "
    "Luis will review the budget by 10 March. Thanks, Carmen"
)
JORGE = (
    "Hi team, Jorge will send the signed contract by Friday 13 March. "
    "Elena will review the budget by 17 March. Thanks, Carmen"
)


@pytest.fixture(params=["memory", "sqlite"])
async def runtime(
    request: pytest.FixtureRequest, tmp_path: Path, fake: FakeProvider
) -> AsyncIterator[Runtime]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/faena.db"
    rt = build_runtime(
        Settings(
            database_url=url,
            home=tmp_path,
            workers=4,
            bootstrap_key="fk_test_admin_key_for_the_llm_tests",
            rate_limits=False,
            shutdown_grace_s=2.0,
            retention_days=0,
        )
    )
    await rt.start()
    await rt.store.put_llm_provider(  # type: ignore[attr-defined]
        ProviderConfig(
            T,
            "fake",
            "openai",
            fake.openai_url,
            None,
            {"small": ModelPrice(1, 2), "big": ModelPrice(5, 10)},
            5.0,
            0,
        )
    )
    cache = rt.semantic_cache
    assert isinstance(cache, SemanticCache) and cache.semantic  # the real model is installed
    try:
        yield rt
    finally:
        await rt.stop()


async def run_job(rt: Runtime, payload: dict[str, Any]) -> Job:
    (submitted,) = await rt.orchestrator.submit(T, [JobRequest("llm", payload)])
    job = await rt.orchestrator.wait(T, submitted.job.id, 30)
    assert job.state is JobState.SUCCEEDED, job.error
    await rt.llm.drain()  # type: ignore[union-attr]  # the answer's cache write (background)
    return job


def commitments(*rows: tuple[str, str, str | None]) -> dict[str, Any]:
    return {"commitments": [{"who": w, "what": x, "due": d} for w, x, d in rows]}


async def extract(rt: Runtime, email: str, received: str) -> Any:
    workflows = rt.workflows
    assert workflows is not None
    run, _ = await workflows.start(T, "commitments", {"email": email, "received": received})
    done = await workflows.wait_run(T, run.id, 30)
    assert done.state.value == "succeeded", done.error
    await rt.llm.drain()  # type: ignore[union-attr]
    return done.steps[0].output


async def test_two_emails_differing_in_names_and_dates_are_each_answered(
    runtime: Runtime, fake: FakeProvider
) -> None:
    await runtime.store.put_llm_policy(  # type: ignore[attr-defined]
        RoutingPolicy(T, "commitments", (Tier("fake/small"),), 1.0)
    )
    await runtime.workflows.apply_text(T, EXAMPLE.read_text())  # type: ignore[union-attr]
    first = commitments(("Ana", "send the signed contract", "2026-03-06"))
    second = commitments(("Jorge", "send the signed contract", "2026-03-13"))
    fake.script(Reply(orjson.dumps(first).decode()), Reply(orjson.dumps(second).decode()))
    a = await extract(runtime, ANA, "2026-03-02")
    b = await extract(runtime, JORGE, "2026-03-02")
    assert fake.calls == 2  # the old cache answered the second from the first (0.97 cosine)
    assert (a["output"], a["cached"]) == (first, False)
    assert (b["output"], b["cached"]) == (second, False)
    again = await extract(runtime, JORGE, "2026-03-02")
    assert fake.calls == 2  # the very same request is an exact hit
    assert again["output"] == second and again["cache"] == {"match": "exact", "similarity": 1.0}


async def test_a_near_duplicate_question_misses_without_opting_in(
    runtime: Runtime, fake: FakeProvider
) -> None:
    await run_job(runtime, {"prompt": FRANCE, "model": "fake/small"})
    job = await run_job(runtime, {"prompt": FRANCE_AGAIN, "model": "fake/small"})
    assert fake.calls == 2 and job.result["cached"] is False


async def test_an_opted_in_near_duplicate_question_hits(
    runtime: Runtime, fake: FakeProvider
) -> None:
    opt_in = {"semantic": True, "threshold": 0.95}
    fake.script(Reply("Paris."))
    await run_job(runtime, {"prompt": FRANCE, "model": "fake/small", "cache": opt_in})
    job = await run_job(runtime, {"prompt": FRANCE_AGAIN, "model": "fake/small", "cache": opt_in})
    assert fake.calls == 1
    assert job.result["content"] == "Paris." and job.result["cached"] is True
    assert job.result["cache"]["match"] == "semantic"
    assert 0.95 <= job.result["cache"]["similarity"] < 1.0
    await runtime.logs.drain()
    logs = await runtime.orchestrator.read_logs(T, job.id)
    assert any("answered from the cache (semantic match" in c.chunk.data for c in logs)


async def test_a_semantic_hit_needs_the_threshold(runtime: Runtime, fake: FakeProvider) -> None:
    strict = {"semantic": True, "threshold": 0.999}
    await run_job(runtime, {"prompt": FRANCE, "model": "fake/small", "cache": strict})
    await run_job(runtime, {"prompt": FRANCE_AGAIN, "model": "fake/small", "cache": strict})
    assert fake.calls == 2


async def test_semantic_hits_never_cross_a_system_prompt_schema_or_model(
    runtime: Runtime, fake: FakeProvider
) -> None:
    opt_in = {"semantic": True, "threshold": 0.9}
    base = {"prompt": FRANCE, "model": "fake/small", "cache": opt_in}
    await run_job(runtime, base)
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    variants: list[dict[str, Any]] = [
        {**base, "prompt": FRANCE_AGAIN, "system": "Answer in French."},
        {**base, "prompt": FRANCE_AGAIN, "response_schema": schema},
        {**base, "prompt": FRANCE_AGAIN, "model": "fake/big"},
        {**base, "prompt": FRANCE_AGAIN, "max_tokens": 5},
    ]
    for payload in variants:
        if "response_schema" in payload:
            fake.script(Reply('{"city": "Paris"}'))
        job = await run_job(runtime, payload)
        assert job.result["cached"] is False, payload
    assert fake.calls == 1 + len(variants)


def test_the_cache_option_is_parsed_and_checked() -> None:
    assert parse_chat({"prompt": "x"}).cache_semantic is None
    assert parse_chat({"prompt": "x"}).cache is True
    assert parse_chat({"prompt": "x", "cache": False}).cache is False
    opted = parse_chat({"prompt": "x", "cache": {"semantic": True, "threshold": 0.97, "ttl_s": 60}})
    assert (opted.cache, opted.cache_semantic, opted.cache_ttl_s) == (
        True,
        SemanticMatch(0.97),
        60.0,
    )
    with pytest.raises(ValidationError, match=r"payload\.cache: unknown field 'similar'"):
        parse_chat({"prompt": "x", "cache": {"similar": True}})
    with pytest.raises(ValidationError, match=r"payload\.cache\.threshold needs semantic: true"):
        parse_chat({"prompt": "x", "cache": {"threshold": 0.9}})
    with pytest.raises(ValidationError, match=r"threshold must be a number between 0\.5 and 1"):
        parse_chat({"prompt": "x", "cache": {"semantic": True, "threshold": 0.2}})


async def test_without_an_embedder_the_cache_matches_exactly(fake: FakeProvider) -> None:
    store = MemoryStore()
    await store.put_llm_provider(provider(fake))
    opt_in = SemanticMatch(0.5)
    async with llm_service(store) as (service, _):
        service.set_cache(SemanticCache(store, None))  # no ai extra: nothing is embedded
        for text in (FRANCE, FRANCE, FRANCE_AGAIN):
            await service.chat(
                "t1", ChatRequest((Message("user", text),), model="a/cheap", cache_semantic=opt_in)
            )
            await service.drain()
    assert fake.calls == 2  # the repeat hit; the paraphrase could not be matched
