"""The semantic cache: a value stored under a text is found again by the same text (exact
match on a hash of the normalized text) or by a text that means the same (cosine similarity
of embeddings at or above a threshold). Entries are isolated per tenant and namespace and
expire after a TTL; hits and misses are counted per tenant for ``/metrics``.

Without an embedder (the ``ai`` extra or the model missing) it is an exact-match cache only.
The LLM layer caches answers with it: by exact match of the whole request by default, by
similarity only for steps that opt in (see :mod:`faena.services.llm`); anything else that maps
a sentence to an expensive result can use it too.
"""

from __future__ import annotations

import asyncio
import hashlib
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Any

from faena.domain.errors import ValidationError
from faena.ports.ai_cache import (
    AiCacheStore,
    GetCacheEntryParams,
    NearestCacheParams,
    PurgeCacheParams,
    PutCacheEntryParams,
    ScanCacheVectorsParams,
)
from faena.ports.clock import Clock, SystemClock
from faena.ports.embedder import Embedder

MAX_TEXT = 32_000  # characters; longer texts are refused rather than silently truncated


@dataclass(frozen=True, slots=True)
class CacheHit:
    value: dict[str, Any]
    similarity: float
    exact: bool


@dataclass(frozen=True, slots=True)
class CacheSettings:
    threshold: float = 0.95  # cosine similarity for a semantic hit
    ttl_s: float | None = 86_400.0  # default expiry; None: never
    refresh_s: float = 1.0  # how stale the in-process index may be (other servers' puts)


def normalize(text: str) -> str:
    """The exact-match form: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def text_key(text: str) -> str:
    return hashlib.sha256(normalize(text).encode()).hexdigest()


class SemanticCache:
    def __init__(
        self,
        store: AiCacheStore,
        embedder: Embedder | None,
        *,
        settings: CacheSettings | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings or CacheSettings()
        self.clock = clock or SystemClock()
        self._indexes: dict[tuple[str, str], Any] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.counts: Counter[tuple[str, str]] = Counter()  # (tenant, exact|semantic|miss)

    @property
    def semantic(self) -> bool:
        """Can it match by similarity (is there an embedder)?"""
        return self.embedder is not None

    async def get(
        self,
        tenant: str,
        namespace: str,
        text: str,
        *,
        threshold: float | None = None,
        semantic: bool = True,
    ) -> CacheHit | None:
        """The cached value for ``text`` or (unless ``semantic=False``) a text similar enough
        to it, or None."""
        _check(namespace, text)
        now = self.clock.now()
        key = text_key(text)
        entry = await self.store.cache_get(GetCacheEntryParams(tenant, namespace, key, now))
        if entry is not None:
            self.counts[(tenant, "exact")] += 1
            return CacheHit(entry.value, 1.0, True)
        if not semantic or self.embedder is None:
            self.counts[(tenant, "miss")] += 1
            return None
        limit = self.settings.threshold if threshold is None else threshold
        (vector,) = await self.embedder.embed([normalize(text)])
        hit = await self._nearest(tenant, namespace, vector, now, limit)
        if hit is None or hit[1] < limit:
            self.counts[(tenant, "miss")] += 1
            return None
        self.counts[(tenant, "semantic")] += 1
        return CacheHit(hit[0], hit[1], False)

    async def put(
        self,
        tenant: str,
        namespace: str,
        text: str,
        value: dict[str, Any],
        ttl_s: float | None = None,
        *,
        semantic: bool = True,
    ) -> None:
        """Store ``value`` under ``text`` (replacing an entry with the same normalized text);
        ``semantic=False`` (or no embedder) stores it for exact matches only, unembedded."""
        _check(namespace, text)
        if ttl_s is not None and ttl_s <= 0:
            raise ValidationError("ttl_s must be positive")
        now = self.clock.now()
        ttl = self.settings.ttl_s if ttl_s is None else ttl_s
        embedder = self.embedder if semantic else None
        vector: list[float] = []
        if embedder is not None:
            (vector,) = await embedder.embed([normalize(text)])
        entry = await self.store.cache_put(
            PutCacheEntryParams(
                tenant=tenant,
                namespace=namespace,
                key=text_key(text),
                text=text,
                vector=tuple(vector),
                value=value,
                now=now,
                expires_at=None if ttl is None else now + ttl,
                model="" if embedder is None else embedder.name,  # "": never scanned
            )
        )
        index = self._indexes.get((tenant, namespace))
        if index is not None and embedder is not None:
            index.add([entry], advance=False)  # visible to this process at once

    async def purge(
        self, *, tenant: str | None = None, namespace: str | None = None, expired_only: bool = True
    ) -> int:
        """Delete expired entries (or all of a tenant's/namespace's); returns how many."""
        removed = await self.store.cache_purge(
            PurgeCacheParams(self.clock.now(), tenant, namespace, expired_only)
        )
        if not expired_only:
            for scope in list(self._indexes):
                if (tenant is None or scope[0] == tenant) and (
                    namespace is None or scope[1] == namespace
                ):
                    del self._indexes[scope]
        return removed

    def hit_rates(self) -> dict[tuple[str], float]:
        """Per tenant: hits / lookups since this process started."""
        tenants = {t for t, _ in self.counts}
        rates: dict[tuple[str], float] = {}
        for tenant in tenants:
            hits = self.counts[(tenant, "exact")] + self.counts[(tenant, "semantic")]
            total = hits + self.counts[(tenant, "miss")]
            rates[(tenant,)] = hits / total if total else 0.0
        return rates

    def lookups(self) -> dict[tuple[str, str], float]:
        return {k: float(v) for k, v in self.counts.items()}

    async def _nearest(
        self, tenant: str, namespace: str, vector: list[float], now: float, limit: float
    ) -> tuple[dict[str, Any], float] | None:
        assert self.embedder is not None
        if self.store.supports_vector_search:
            found = await self.store.cache_nearest(
                NearestCacheParams(tenant, namespace, self.embedder.name, tuple(vector), now)
            )
            return None if found is None else (found.entry.value, found.similarity)
        index = await self._index(tenant, namespace, now)
        key, score = index.nearest(vector, now, limit)
        if not key:
            return None
        entry = await self.store.cache_get(GetCacheEntryParams(tenant, namespace, key, now))
        if entry is None:  # expired or purged since the index saw it
            index.drop(key)
            return None
        return entry.value, score

    async def _index(self, tenant: str, namespace: str, now: float) -> Any:
        from faena.services.vector_index import VectorIndex  # numpy: only when used

        assert self.embedder is not None
        scope = (tenant, namespace)
        index = self._indexes.get(scope)
        if index is not None and now - index.refreshed_at < self.settings.refresh_s:
            return index
        lock = self._locks.setdefault(scope, asyncio.Lock())
        async with lock:
            index = self._indexes.get(scope)
            if index is None:
                index = VectorIndex(self.embedder.dimension)
                self._indexes[scope] = index
            if now - index.refreshed_at >= self.settings.refresh_s:
                while True:
                    batch = await self.store.cache_scan_vectors(
                        ScanCacheVectorsParams(
                            tenant, namespace, self.embedder.name, index.loaded_seq, now
                        )
                    )
                    index.add(batch)
                    if len(batch) < 10_000:
                        break
                index.refreshed_at = now
        return index


def _check(namespace: str, text: str) -> None:
    if not namespace or len(namespace) > 200:
        raise ValidationError("namespace must be 1 to 200 characters")
    if not text.strip():
        raise ValidationError("text must not be empty")
    if len(text) > MAX_TEXT:
        raise ValidationError(f"text is longer than {MAX_TEXT} characters")
