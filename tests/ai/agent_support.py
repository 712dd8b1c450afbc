"""A started faena runtime (memory or SQLite) with the fake provider configured, and tasks
for agents to call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from faena.bootstrap import Runtime, build_runtime
from faena.config import Settings
from faena.domain.jobs import DEFAULT_TENANT, Job
from faena.domain.llm import ModelPrice, ProviderConfig
from faena.services.orchestrator import JobRequest
from faena.worker.registry import TaskRegistry, task
from tests.ai.providers import FakeProvider

registry = TaskRegistry()
ADMIN_KEY = "fk_test_admin_key_for_the_agent_tests"
executions: list[tuple[str, Any]] = []


@task(registry=registry)
async def double(x: int) -> int:
    """Double a number."""
    executions.append(("double", x))
    return x * 2


@task(registry=registry)
async def lookup_customer(name: str, active_only: bool = True) -> dict[str, Any]:
    """Find a customer by name."""
    executions.append(("lookup_customer", name))
    return {"name": name, "id": 7, "active": active_only}


@task(registry=registry)
async def explode(reason: str) -> None:
    """Always fails."""
    raise RuntimeError(reason)


RuntimeFactory = Callable[..., Awaitable[Runtime]]


@pytest.fixture(params=["memory", "sqlite"])
async def agent_runtime(
    request: pytest.FixtureRequest, tmp_path: Path, fake: FakeProvider
) -> AsyncIterator[Runtime]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/faena.db"
    runtime = build_runtime(
        Settings(
            database_url=url,
            home=tmp_path,
            workers=16,
            bootstrap_key=ADMIN_KEY,
            rate_limits=False,
            shutdown_grace_s=2.0,
            retention_days=0,
        ),
        registry=registry,
    )
    await runtime.start()
    await runtime.store.put_llm_provider(  # type: ignore[attr-defined]
        ProviderConfig(
            DEFAULT_TENANT,
            "fake",
            "openai",
            fake.openai_url,
            models={"m": ModelPrice(1_000_000, 1_000_000)},  # $1 per token: costs add up fast
            max_retries=0,
        )
    )
    executions.clear()
    try:
        yield runtime
    finally:
        await runtime.stop()
        await close_providers(runtime)


async def close_providers(runtime: Runtime) -> None:
    """Close the LLM provider clients (their sockets to the fake server), in case the
    runtime's stop does not yet (reported to the LLM layer's owner)."""
    for provider in getattr(runtime.llm, "_providers", {}).values():
        await provider.aclose()


async def run_agent(
    runtime: Runtime, payload: dict[str, Any], *, max_attempts: int = 1, timeout: float = 30
) -> Job:
    (submitted,) = await runtime.orchestrator.submit(
        DEFAULT_TENANT, [JobRequest("agent", payload, max_attempts=max_attempts, backoff_s=0.05)]
    )
    return await runtime.orchestrator.wait(DEFAULT_TENANT, submitted.job.id, timeout)
