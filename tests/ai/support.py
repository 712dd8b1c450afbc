"""Helpers of the LLM tests: a service on a store with the real provider adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from faena.adapters.llm import AnthropicProvider, OpenAIProvider
from faena.domain.llm import ModelPrice, ProviderConfig, RoutingPolicy, Tier
from faena.services.llm import LlmService
from faena.services.llm_routing import LlmConfig
from tests.ai.providers import FakeProvider

CHEAP = ModelPrice(1.0, 2.0)  # USD per million tokens
STRONG = ModelPrice(10.0, 30.0)


class Sleeps:
    """An injected sleep that records what it was asked to wait and does not wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def provider(
    fake: FakeProvider,
    name: str = "a",
    *,
    kind: str = "openai",
    tenant: str = "t1",
    max_retries: int = 0,
    timeout_s: float = 5.0,
    api_key_secret: str | None = None,
) -> ProviderConfig:
    return ProviderConfig(
        tenant=tenant,
        name=name,
        kind=kind,
        base_url=fake.openai_url if kind == "openai" else fake.anthropic_url,
        api_key_secret=api_key_secret,
        models={"cheap": CHEAP, "strong": STRONG},
        timeout_s=timeout_s,
        max_retries=max_retries,
        created_at=1.0,
        updated_at=1.0,
    )


def policy(name: str, *tiers: Tier, tenant: str = "t1") -> RoutingPolicy:
    return RoutingPolicy(tenant, name, tiers, 1.0)


@asynccontextmanager
async def llm_service(store: Any, **config: Any) -> AsyncIterator[tuple[LlmService, Sleeps]]:
    sleeps = Sleeps()
    openai, anthropic = OpenAIProvider(), AnthropicProvider()
    service = LlmService(
        store,
        {"openai": openai, "anthropic": anthropic},
        config=LlmConfig(**{"backoff_s": 0.01, **config}),
        sleep=sleeps,
    )
    try:
        yield service, sleeps
    finally:
        await openai.aclose()
        await anthropic.aclose()
