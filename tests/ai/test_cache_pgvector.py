"""The PostgreSQL cache store ranks vectors with pgvector exactly when the server offers the
extension, and otherwise leaves it to the in-process index. On faena's test machine pgvector
is not installable (no Debian package), so only the fallback really runs here; the test still
states the rule for a server that has it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg

from faena.services.semantic_cache import CacheSettings, SemanticCache
from tests.ai.cache_support import FakeClock, real_embedder
from tests.conftest import POSTGRES_URL
from tests.contract.conftest import BACKENDS


async def test_pgvector_is_used_only_when_the_server_has_it(tmp_path: Path) -> None:
    store: Any = await BACKENDS["postgres"](tmp_path)
    await store.open()
    try:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            available = await conn.fetchval(
                "SELECT count(*) > 0 FROM pg_available_extensions WHERE name = 'vector'"
            )
        finally:
            await conn.close()
        assert store.supports_vector_search == available
        # Either way the cache answers (the failed CREATE EXTENSION left nothing behind).
        cache = SemanticCache(store, real_embedder(), settings=CacheSettings(threshold=0.9))
        cache.clock = FakeClock()
        await cache.put("acme", "faq", "What is the capital of France?", {"a": "Paris"})
        hit = await cache.get("acme", "faq", "What's the capital of France?")
        assert hit is not None and hit.value == {"a": "Paris"} and not hit.exact
    finally:
        await store.close()
