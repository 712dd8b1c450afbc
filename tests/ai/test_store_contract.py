"""The LlmStore contract on every backend (memory, SQLite, PostgreSQL), and budgets through the
service on each: refusal, downgrade, and atomic reservations under concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from faena.domain.llm import (
    Budget,
    BudgetExhausted,
    CallRecord,
    ChatRequest,
    Message,
    ModelPrice,
    ProviderConfig,
    Tier,
    period_start,
)
from faena.ports.llm import BudgetScopes, ReserveParams, SettleParams, UsageParams
from tests.ai.providers import FakeProvider, Reply
from tests.ai.support import llm_service, policy, provider
from tests.contract.conftest import BACKENDS

NOW = 1_750_000_000.0


def _budget(limit: float, *, scope: str = "tenant", name: str = "*", **kw: Any) -> Budget:
    return Budget("t1", scope, name, limit, updated_at=NOW, **kw)


def _call(
    job: str | None, index: int, cost: float, *, model: str = "m", at: float = NOW
) -> CallRecord:
    return CallRecord(
        id=f"c-{job}-{index}-{model}-{at}",
        tenant="t1",
        job_id=job,
        attempt=1,
        call_index=index,
        request_hash="h",
        provider="p",
        model=model,
        response={"content": "hi"},
        tokens_in=10,
        tokens_out=5,
        cost=cost,
        latency_ms=1.5,
        workflow=None,
        created_at=at,
    )


async def test_providers_round_trip_and_keep_created_at(any_store: Any) -> None:
    config = ProviderConfig(
        "t1", "openai", "openai", "http://x/v1", "KEY", {"m": ModelPrice(1.5, 2)}, 9.0, 3, 5.0, 5.0
    )
    await any_store.put_llm_provider(config)
    await any_store.put_llm_provider(
        ProviderConfig("t1", "openai", "openai", "http://y/v1", None, {}, 60.0, 2, 7.0, 7.0)
    )
    found = await any_store.get_llm_provider("t1", "openai")
    assert found.base_url == "http://y/v1" and found.created_at == 5.0 and found.updated_at == 7.0
    await any_store.put_llm_provider(config.__class__(**{**_fields(config), "name": "b"}))
    assert [p.name for p in await any_store.list_llm_providers("t1")] == ["b", "openai"]
    assert (await any_store.get_llm_provider("t1", "b")).models == {"m": ModelPrice(1.5, 2)}
    assert await any_store.list_llm_providers("t2") == []
    assert await any_store.delete_llm_provider("t1", "b")
    assert not await any_store.delete_llm_provider("t1", "b")


def _fields(obj: Any) -> dict[str, Any]:
    return {f: getattr(obj, f) for f in obj.__dataclass_fields__}


async def test_policies_round_trip(any_store: Any) -> None:
    p = policy("default", Tier("a/cheap", ("b/cheap",), 4000), Tier("a/strong"))
    await any_store.put_llm_policy(p)
    assert await any_store.get_llm_policy("t1", "default") == p
    assert await any_store.list_llm_policies("t1") == [p]
    assert await any_store.delete_llm_policy("t1", "default")
    assert await any_store.get_llm_policy("t1", "default") is None


async def test_a_budget_reserves_until_spent_then_refuses(any_store: Any) -> None:
    await any_store.put_llm_budget(_budget(1.0, period="day"))
    scopes = BudgetScopes("t1")
    assert (await any_store.reserve_llm_budget(ReserveParams(scopes, 0.6, NOW))).reserved
    assert (await any_store.reserve_llm_budget(ReserveParams(scopes, 0.6, NOW))).reserved
    refused = await any_store.reserve_llm_budget(ReserveParams(scopes, 0.1, NOW))
    assert not refused.reserved and refused.exhausted[0].spent_usd == pytest.approx(1.2)
    await any_store.settle_llm_budget(SettleParams(scopes, -0.5, NOW))
    assert (await any_store.list_llm_budgets("t1"))[0].spent_usd == pytest.approx(0.7)
    # the next day starts from zero
    tomorrow = NOW + 86_400
    assert (await any_store.reserve_llm_budget(ReserveParams(scopes, 0.2, tomorrow))).reserved
    (b,) = await any_store.list_llm_budgets("t1")
    assert b.spent_usd == pytest.approx(0.2) and b.period_start == period_start("day", tomorrow)


async def test_changing_a_limit_keeps_what_was_spent(any_store: Any) -> None:
    await any_store.put_llm_budget(_budget(1.0))
    await any_store.reserve_llm_budget(ReserveParams(BudgetScopes("t1"), 0.4, NOW))
    saved = await any_store.put_llm_budget(_budget(5.0))
    assert saved.limit_usd == 5.0 and saved.spent_usd == pytest.approx(0.4)


async def test_a_workflow_budget_applies_to_its_workflow_only(any_store: Any) -> None:
    await any_store.put_llm_budget(_budget(0.0, scope="workflow", name="intake"))
    assert (await any_store.reserve_llm_budget(ReserveParams(BudgetScopes("t1"), 1, NOW))).reserved
    other = BudgetScopes("t1", "other")
    assert (await any_store.reserve_llm_budget(ReserveParams(other, 1, NOW))).reserved
    intake = BudgetScopes("t1", "intake")
    assert not (await any_store.reserve_llm_budget(ReserveParams(intake, 1, NOW))).reserved


async def test_concurrent_reservations_cannot_all_spend_the_last_of_a_budget(
    any_store: Any,
) -> None:
    await any_store.put_llm_budget(_budget(1.0))
    scopes = BudgetScopes("t1")
    outcomes = await asyncio.gather(
        *(any_store.reserve_llm_budget(ReserveParams(scopes, 0.3, NOW)) for _ in range(10))
    )
    assert sum(o.reserved for o in outcomes) == 4  # 0, 0.3, 0.6, 0.9 were all under 1.0
    (b,) = await any_store.list_llm_budgets("t1")
    assert b.spent_usd == pytest.approx(1.2)  # over by less than one call's estimate


async def test_call_records_are_unique_per_job_and_index(any_store: Any) -> None:
    assert await any_store.record_llm_call(_call("j1", 0, 0.1))
    assert not await any_store.record_llm_call(_call("j1", 0, 0.2, model="other"))
    assert await any_store.record_llm_call(_call("j1", 1, 0.3))
    assert await any_store.record_llm_call(_call(None, 0, 0.4))
    assert await any_store.record_llm_call(_call(None, 0, 0.5, at=NOW + 1))
    found = await any_store.find_llm_call("t1", "j1", 0)
    assert found.cost == 0.1 and found.response == {"content": "hi"} and found.latency_ms == 1.5
    assert await any_store.find_llm_call("t2", "j1", 0) is None
    assert [c.call_index for c in await any_store.list_llm_calls("t1", "j1")] == [0, 1]


async def test_usage_is_grouped_and_filtered_by_time(any_store: Any) -> None:
    await any_store.record_llm_call(_call("j1", 0, 0.25, model="a"))
    await any_store.record_llm_call(_call("j1", 1, 0.5, model="b"))
    await any_store.record_llm_call(_call("j2", 0, 1.0, model="b", at=NOW + 86_400))
    rows = await any_store.llm_usage(UsageParams("t1", 0, "model"))
    assert [(r.key, r.calls, r.tokens_in, r.cost) for r in rows] == [
        ("p/a", 1, 10, 0.25),
        ("p/b", 2, 20, 1.5),
    ]
    jobs = await any_store.llm_usage(UsageParams("t1", NOW + 1, "job"))
    assert [(r.key, r.cost) for r in jobs] == [("j2", 1.0)]
    days = await any_store.llm_usage(UsageParams("t1", 0, "day"))
    assert [r.key for r in days] == ["2025-06-15", "2025-06-16"]


async def test_an_exhausted_budget_refuses_the_call(any_store: Any, fake: FakeProvider) -> None:
    await any_store.put_llm_provider(provider(fake))
    await any_store.put_llm_budget(_budget(0.0))
    async with llm_service(any_store) as (service, _):
        with pytest.raises(BudgetExhausted, match="the tenant's LLM budget is exhausted"):
            await service.chat("t1", ChatRequest((Message("user", "hi"),), model="a/strong"))
    assert fake.calls == 0


async def test_an_exhausted_budget_can_downgrade(any_store: Any, fake: FakeProvider) -> None:
    await any_store.put_llm_provider(provider(fake))
    await any_store.put_llm_budget(
        _budget(0.0, on_exhausted="downgrade", downgrade_model="a/cheap")
    )
    async with llm_service(any_store) as (service, _):
        result = await service.chat("t1", ChatRequest((Message("user", "hi"),), model="a/strong"))
    assert result.model == "cheap"
    assert ("budget", "downgraded") in [(g["name"], g["verdict"]) for g in result.guardrails]
    (b,) = await any_store.list_llm_budgets("t1")
    assert b.spent_usd == pytest.approx(result.cost)  # still counted


async def test_spending_is_settled_to_the_real_cost(any_store: Any, fake: FakeProvider) -> None:
    await any_store.put_llm_provider(provider(fake))
    await any_store.put_llm_budget(_budget(10.0))
    fake.script(Reply("short"))
    async with llm_service(any_store) as (service, _):
        result = await service.chat("t1", ChatRequest((Message("user", "hi"),), model="a/strong"))
    (b,) = await any_store.list_llm_budgets("t1")
    assert b.spent_usd == pytest.approx(result.cost)
    rows = await any_store.llm_usage(UsageParams("t1", 0, "model"))
    assert [(r.key, r.calls) for r in rows] == [("a/strong", 1)]


@pytest.fixture
async def pg_store(tmp_path: Path) -> AsyncIterator[Any]:
    store = await BACKENDS["postgres"](tmp_path)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_row_level_security_hides_other_tenants_llm_rows(pg_store: Any) -> None:
    """PostgreSQL: under the tenant role, a query without ``WHERE tenant`` still sees only that
    tenant's providers, budgets and calls."""
    any_store = pg_store
    for tenant in ("t1", "t2"):
        await any_store.put_llm_provider(
            ProviderConfig(tenant, "p", "openai", "http://x/v1", created_at=1, updated_at=1)
        )
        await any_store.put_llm_budget(Budget(tenant, "tenant", "*", 1.0, updated_at=1))
        await any_store.record_llm_call(replace(_call("j", 0, 0.1), id=tenant, tenant=tenant))
    async with any_store._tenant_connection("t1", "testing RLS") as conn:
        for table in ("llm_providers", "llm_budgets", "llm_calls"):
            rows = await conn.fetch(f"SELECT tenant FROM {table}")  # no tenant filter
            assert [r[0] for r in rows] == ["t1"], table
