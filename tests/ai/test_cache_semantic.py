"""The semantic cache on every store backend, with the real all-MiniLM-L6-v2 model."""

from __future__ import annotations

from typing import Any

import pytest

from faena.domain.errors import ValidationError
from faena.services.semantic_cache import CacheSettings, SemanticCache
from tests.ai.cache_support import FakeClock, any_store, real_embedder

__all__ = ["any_store"]


def _cache(store: Any, clock: FakeClock, **settings: Any) -> SemanticCache:
    return SemanticCache(store, real_embedder(), settings=CacheSettings(**settings), clock=clock)


async def test_exact_match_ignores_case_and_spacing(any_store: Any) -> None:
    cache = _cache(any_store, FakeClock())
    await cache.put("acme", "gpt", "What is the capital of France?", {"answer": "Paris"})
    hit = await cache.get("acme", "gpt", "  what is the CAPITAL of   france? ")
    assert hit is not None and hit.exact and hit.value == {"answer": "Paris"}
    assert hit.similarity == 1.0


async def test_a_paraphrase_is_a_semantic_hit(any_store: Any) -> None:
    cache = _cache(any_store, FakeClock(), threshold=0.8)
    await cache.put("acme", "gpt", "What is the capital of France?", {"answer": "Paris"})
    hit = await cache.get("acme", "gpt", "Which city is the capital of France?")
    assert hit is not None and not hit.exact
    assert 0.8 <= hit.similarity < 1.0
    assert hit.value == {"answer": "Paris"}


async def test_an_unrelated_question_misses(any_store: Any) -> None:
    cache = _cache(any_store, FakeClock(), threshold=0.8)
    await cache.put("acme", "gpt", "What is the capital of France?", {"answer": "Paris"})
    assert await cache.get("acme", "gpt", "How do I bake sourdough bread?") is None


async def test_the_threshold_decides(any_store: Any) -> None:
    cache = _cache(any_store, FakeClock(), threshold=0.99)
    await cache.put("acme", "gpt", "What is the capital of France?", {"answer": "Paris"})
    assert await cache.get("acme", "gpt", "Which city is the capital of France?") is None
    hit = await cache.get("acme", "gpt", "Which city is the capital of France?", threshold=0.5)
    assert hit is not None


async def test_tenants_and_namespaces_are_isolated(any_store: Any) -> None:
    cache = _cache(any_store, FakeClock(), threshold=0.5)
    await cache.put("acme", "gpt", "What is the capital of France?", {"answer": "Paris"})
    assert await cache.get("globex", "gpt", "What is the capital of France?") is None
    assert await cache.get("acme", "claude", "What is the capital of France?") is None
    assert await cache.get("globex", "gpt", "Which city is the capital of France?") is None


async def test_entries_expire_after_their_ttl(any_store: Any) -> None:
    clock = FakeClock()
    cache = _cache(any_store, clock, threshold=0.8, refresh_s=0.0)
    await cache.put("acme", "gpt", "What is the capital of France?", {"a": 1}, ttl_s=60)
    clock.t += 59
    assert await cache.get("acme", "gpt", "Which city is the capital of France?") is not None
    clock.t += 2
    assert await cache.get("acme", "gpt", "What is the capital of France?") is None
    assert await cache.get("acme", "gpt", "Which city is the capital of France?") is None
    assert await cache.purge() == 1


async def test_a_put_replaces_the_value_of_the_same_text(any_store: Any) -> None:
    cache = _cache(any_store, FakeClock(), threshold=0.8, refresh_s=0.0)
    await cache.put("acme", "gpt", "What is the capital of France?", {"v": 1})
    assert await cache.get("acme", "gpt", "Which city is the capital of France?") is not None
    await cache.put("acme", "gpt", "what is the capital of france?", {"v": 2})
    hit = await cache.get("acme", "gpt", "Which city is the capital of France?")
    assert hit is not None and hit.value == {"v": 2}


async def test_another_process_sees_new_entries_after_the_refresh(any_store: Any) -> None:
    clock = FakeClock()
    reader = _cache(any_store, clock, threshold=0.8, refresh_s=5.0)
    writer = _cache(any_store, clock, threshold=0.8)
    assert await reader.get("acme", "gpt", "Which city is the capital of France?") is None
    await writer.put("acme", "gpt", "What is the capital of France?", {"answer": "Paris"})
    assert await reader.get("acme", "gpt", "Which city is the capital of France?") is None
    clock.t += 5
    assert await reader.get("acme", "gpt", "Which city is the capital of France?") is not None


async def test_hit_rate_is_counted_per_tenant(any_store: Any) -> None:
    cache = _cache(any_store, FakeClock(), threshold=0.8)
    await cache.put("acme", "gpt", "What is the capital of France?", {"answer": "Paris"})
    await cache.get("acme", "gpt", "What is the capital of France?")
    await cache.get("acme", "gpt", "Which city is the capital of France?")
    await cache.get("acme", "gpt", "How do I bake sourdough bread?")
    await cache.get("acme", "gpt", "How do I bake sourdough bread?")
    assert cache.hit_rates() == {("acme",): 0.5}
    assert cache.lookups() == {
        ("acme", "exact"): 1.0,
        ("acme", "semantic"): 1.0,
        ("acme", "miss"): 2.0,
    }


async def test_bad_input_is_refused(any_store: Any) -> None:
    cache = _cache(any_store, FakeClock())
    with pytest.raises(ValidationError):
        await cache.put("acme", "gpt", "   ", {"v": 1})
    with pytest.raises(ValidationError):
        await cache.get("acme", "", "text")
    with pytest.raises(ValidationError):
        await cache.put("acme", "gpt", "text", {"v": 1}, ttl_s=0)
