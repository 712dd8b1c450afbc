"""An in-memory faena with tasks for workflows, and an HTTP client on its API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from faena.testing import InMemoryFaena
from faena.worker.registry import TaskRegistry, task

registry = TaskRegistry()


@task(registry=registry)
async def extract(url: str) -> dict[str, Any]:
    return {"amount": len(url) * 100, "lines": url.split("/")}


@task(registry=registry)
async def double(x: Any) -> Any:
    return x * 2


@task(registry=registry)
async def boom(message: str = "boom") -> None:
    raise RuntimeError(message)


@pytest.fixture
async def faena() -> AsyncIterator[InMemoryFaena]:
    async with InMemoryFaena(registry=registry) as f:
        yield f


@pytest.fixture
async def http(faena: InMemoryFaena) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(faena.app),
        base_url="http://faena",
        headers={"Authorization": f"Bearer {faena.api_key}"},
    ) as client:
        yield client


@task(registry=registry)
async def echo(**fields: Any) -> dict[str, Any]:
    return fields
