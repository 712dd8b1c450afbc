"""Fixtures of the LLM layer's tests: fake providers on 127.0.0.1 and a store per backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.ai.providers import FakeProvider
from tests.contract.conftest import BACKENDS


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    server = await FakeProvider().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def fake2() -> AsyncIterator[FakeProvider]:
    server = await FakeProvider().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(params=sorted(BACKENDS))
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    """A fresh, migrated store of each backend (memory, SQLite, PostgreSQL)."""
    store = await BACKENDS[request.param](tmp_path)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
