"""``/v1/llm`` on an in-memory faena: providers, policies, budgets, usage, calls, metrics, and
precise 4xx answers to bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from faena.testing import InMemoryFaena
from tests.ai.providers import FakeProvider, Reply


@pytest.fixture
async def client() -> AsyncIterator[tuple[InMemoryFaena, httpx.AsyncClient]]:
    async with InMemoryFaena(workers=2) as f:
        transport = httpx.ASGITransport(f.app)
        headers = {"Authorization": f"Bearer {f.api_key}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://faena.test", headers=headers
        ) as c:
            yield f, c


def _error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    message: str = r.json()["error"]["message"]
    return message


async def test_providers_policies_and_budgets_round_trip(
    client: tuple[InMemoryFaena, httpx.AsyncClient], fake: FakeProvider
) -> None:
    _, c = client
    body = {
        "kind": "openai",
        "base_url": fake.openai_url,
        "models": {"small": {"input_per_mtok": 0.5, "output_per_mtok": 1.5}},
        "max_retries": 1,
    }
    r = await c.put("/v1/llm/providers/local", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["models"]["small"] == {"input_per_mtok": 0.5, "output_per_mtok": 1.5}
    assert [p["name"] for p in (await c.get("/v1/llm/providers")).json()["providers"]] == ["local"]
    r = await c.put(
        "/v1/llm/policies/default",
        json={"tiers": [{"model": "local/small", "max_prompt_chars": 2000}, "local/big"]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["tiers"][1] == {"model": "local/big", "fallbacks": [], "max_prompt_chars": None}
    r = await c.put(
        "/v1/llm/budgets",
        json={
            "budgets": [
                {"limit_usd": 5, "period": "day"},
                {"scope": "workflow", "name": "intake", "limit_usd": 1},
            ]
        },
    )
    assert r.status_code == 200, r.text
    budgets = (await c.get("/v1/llm/budgets")).json()["budgets"]
    assert [(b["scope"], b["name"], b["remaining_usd"]) for b in budgets] == [
        ("tenant", "*", 5.0),
        ("workflow", "intake", 1.0),
    ]
    assert (await c.delete("/v1/llm/budgets/workflow/intake")).status_code == 200
    assert (await c.delete("/v1/llm/policies/default")).status_code == 200
    assert (await c.delete("/v1/llm/providers/local")).status_code == 200
    assert "not found" in _error(await c.get("/v1/llm/providers/local"), 404)


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (
            "/v1/llm/providers/x",
            {"kind": "cohere", "base_url": "http://a"},
            "body.kind must be one of",
        ),
        (
            "/v1/llm/providers/x",
            {"kind": "openai", "base_url": "ftp://a"},
            "base_url must be an http(s) URL",
        ),
        (
            "/v1/llm/providers/x",
            {"kind": "openai", "base_url": "http://a", "extra": 1},
            "unknown field 'extra'",
        ),
        (
            "/v1/llm/providers/bad name",
            {"kind": "openai", "base_url": "http://a"},
            "bad provider name",
        ),
        ("/v1/llm/policies/p", {"tiers": []}, "body.tiers must be a list of 1 to 8 tiers"),
        (
            "/v1/llm/policies/p",
            {"tiers": [{"fallbacks": ["x"]}]},
            "body.tiers[0].model is required",
        ),
        ("/v1/llm/budgets", {"budgets": [{"limit_usd": -1}]}, "budget.limit_usd must be a number"),
        (
            "/v1/llm/budgets",
            {"budgets": [{"limit_usd": 1, "on_exhausted": "downgrade"}]},
            "downgrade_model is required",
        ),
        ("/v1/llm/budgets", {"limit_usd": 1}, 'body must be {"budgets"'),
    ],
)
async def test_bad_configuration_is_a_precise_422(
    client: tuple[InMemoryFaena, httpx.AsyncClient], path: str, body: Any, message: str
) -> None:
    _, c = client
    assert message in _error(await c.put(path, json=body), 422)


async def test_usage_calls_and_metrics_after_a_job(
    client: tuple[InMemoryFaena, httpx.AsyncClient], fake: FakeProvider
) -> None:
    f, c = client
    body = {
        "kind": "anthropic",
        "base_url": fake.anthropic_url,
        "models": {"m": {"input_per_mtok": 1e6, "output_per_mtok": 0}},
    }
    assert (await c.put("/v1/llm/providers/claude", json=body)).status_code == 200
    fake.script(Reply("four words of answer"))
    r = await c.post(
        "/v1/jobs",
        json={"kind": "llm", "payload": {"prompt": "Say something.", "model": "claude/m"}},
    )
    assert r.status_code == 201, r.text
    job = await f.wait(r.json()["id"])
    assert job.state.value == "succeeded", job.error
    tokens_in = job.result["usage"]["tokens_in"]
    usage = (
        await c.get(
            "/v1/llm/usage", params={"group_by": "provider", "since": "2020-01-01T00:00:00Z"}
        )
    ).json()
    assert usage["groups"] == [
        {
            "key": "claude",
            "calls": 1,
            "tokens_in": tokens_in,
            "tokens_out": 5,
            "cost_usd": float(tokens_in),
        }
    ]
    assert usage["total"]["cost_usd"] == float(tokens_in)
    calls = (await c.get("/v1/llm/calls", params={"job_id": job.id})).json()["calls"]
    assert calls[0]["model"] == "m" and calls[0]["guardrails"][0]["name"] == "injection"
    metrics = (await c.get("/metrics")).text
    assert 'faena_llm_calls_total{model="m",outcome="ok",provider="claude"} 1.0' in metrics
    cost = 'faena_llm_cost_usd_total{model="m",provider="claude",tenant="default"}'
    assert f"{cost} {float(tokens_in)}" in metrics
    assert 'faena_llm_guardrail_verdicts_total{guardrail="pii",verdict="pass"} 1.0' in metrics


async def test_bad_usage_queries_are_422(client: tuple[InMemoryFaena, httpx.AsyncClient]) -> None:
    _, c = client
    assert "group_by must be one of" in _error(
        await c.get("/v1/llm/usage", params={"group_by": "x"}), 422
    )
    assert "since must be epoch seconds" in _error(
        await c.get("/v1/llm/usage", params={"since": "yesterday"}), 422
    )


async def test_an_llm_job_without_a_provider_fails_clearly(
    client: tuple[InMemoryFaena, httpx.AsyncClient],
) -> None:
    f, c = client
    r = await c.post("/v1/jobs", json={"kind": "llm", "payload": {"prompt": "hi"}, "retries": 2})
    job = await f.wait(r.json()["id"])
    assert job.state.value == "failed" and job.attempts == 1
    assert "no LLM provider is configured" in str(job.error)
