"""Rows of the LLM tables ↔ domain objects, shared by the SQL adapters (SQLite rows and asyncpg
records both index by position; each adapter selects the columns in this order)."""

from __future__ import annotations

from typing import Any

import orjson

from faena.domain.llm import (
    Budget,
    CallRecord,
    ModelPrice,
    ProviderConfig,
    RoutingPolicy,
    Tier,
)

BUDGET_COLUMNS = (
    "tenant, scope, name, limit_usd, period, on_exhausted, downgrade_model, spent_usd,"
    " period_start, updated_at"
)
CALL_COLUMNS = (
    "id, tenant, job_id, attempt, call_index, request_hash, provider, model, response,"
    " tokens_in, tokens_out, cost, latency_ms, workflow, created_at"
)


def provider_doc(p: ProviderConfig) -> str:
    return orjson.dumps(
        {
            "kind": p.kind,
            "base_url": p.base_url,
            "api_key_secret": p.api_key_secret,
            "models": {
                m: [price.input_per_mtok, price.output_per_mtok] for m, price in p.models.items()
            },
            "timeout_s": p.timeout_s,
            "max_retries": p.max_retries,
        }
    ).decode()


def provider(
    tenant: str, name: str, doc: str, created_at: float, updated_at: float
) -> ProviderConfig:
    d = orjson.loads(doc)
    return ProviderConfig(
        tenant=tenant,
        name=name,
        kind=d["kind"],
        base_url=d["base_url"],
        api_key_secret=d.get("api_key_secret"),
        models={m: ModelPrice(float(v[0]), float(v[1])) for m, v in d["models"].items()},
        timeout_s=float(d["timeout_s"]),
        max_retries=int(d["max_retries"]),
        created_at=float(created_at),
        updated_at=float(updated_at),
    )


def policy_doc(p: RoutingPolicy) -> str:
    return orjson.dumps(
        [
            {
                "model": t.model,
                "fallbacks": list(t.fallbacks),
                "max_prompt_chars": t.max_prompt_chars,
            }
            for t in p.tiers
        ]
    ).decode()


def policy(tenant: str, name: str, doc: str, updated_at: float) -> RoutingPolicy:
    tiers = tuple(
        Tier(t["model"], tuple(t["fallbacks"]), t.get("max_prompt_chars"))
        for t in orjson.loads(doc)
    )
    return RoutingPolicy(tenant, name, tiers, float(updated_at))


def budget_row(b: Budget) -> tuple[Any, ...]:
    return (
        b.tenant,
        b.scope,
        b.name,
        b.limit_usd,
        b.period,
        b.on_exhausted,
        b.downgrade_model,
        b.spent_usd,
        b.period_start,
        b.updated_at,
    )


def budget(r: Any) -> Budget:
    return Budget(
        tenant=r[0],
        scope=r[1],
        name=r[2],
        limit_usd=float(r[3]),
        period=r[4],
        on_exhausted=r[5],
        downgrade_model=r[6],
        spent_usd=float(r[7]),
        period_start=float(r[8]),
        updated_at=float(r[9]),
    )


def call_row(c: CallRecord) -> tuple[Any, ...]:
    return (
        c.id,
        c.tenant,
        c.job_id,
        c.attempt,
        c.call_index,
        c.request_hash,
        c.provider,
        c.model,
        orjson.dumps(c.response).decode(),
        c.tokens_in,
        c.tokens_out,
        c.cost,
        c.latency_ms,
        c.workflow,
        c.created_at,
    )


def call(r: Any) -> CallRecord:
    return CallRecord(
        id=r[0],
        tenant=r[1],
        job_id=r[2],
        attempt=int(r[3]),
        call_index=int(r[4]),
        request_hash=r[5],
        provider=r[6],
        model=r[7],
        response=orjson.loads(r[8]),
        tokens_in=int(r[9]),
        tokens_out=int(r[10]),
        cost=float(r[11]),
        latency_ms=float(r[12]),
        workflow=r[13],
        created_at=float(r[14]),
    )
