"""The AiCacheStore port: entries of the semantic cache (text, vector, value) per tenant and
namespace, with an expiry. One frozen params dataclass per operation, as in
:mod:`faena.ports.store`.

Capability: ``supports_vector_search`` says whether the store itself ranks vectors (PostgreSQL
with pgvector). Otherwise the service keeps an in-process index fed by :meth:`scan_vectors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class CacheEntry:
    seq: int  # monotonic per store: the in-process index loads only what is new
    tenant: str
    namespace: str
    key: str  # sha256 of the normalized text: the exact-match key
    text: str
    vector: Sequence[float]  # SQL stores: an array('f') over the stored bytes (no float objects)
    value: dict[str, Any]
    created_at: float
    expires_at: float | None
    model: str


@dataclass(frozen=True, slots=True)
class PutCacheEntryParams:
    """Insert or replace the entry of (tenant, namespace, key); a replaced entry gets a new
    ``seq`` so indexes pick the new value up."""

    tenant: str
    namespace: str
    key: str
    text: str
    vector: tuple[float, ...]
    value: dict[str, Any]
    now: float
    expires_at: float | None
    model: str


@dataclass(frozen=True, slots=True)
class GetCacheEntryParams:
    tenant: str
    namespace: str
    key: str
    now: float  # expired entries are not returned


@dataclass(frozen=True, slots=True)
class ScanCacheVectorsParams:
    """Live entries of one (tenant, namespace, model) with ``seq > after_seq``, oldest first."""

    tenant: str
    namespace: str
    model: str
    after_seq: int
    now: float
    limit: int = 10_000


@dataclass(frozen=True, slots=True)
class NearestCacheParams:
    """The live entry most similar (inner product of unit vectors) to ``vector``."""

    tenant: str
    namespace: str
    model: str
    vector: tuple[float, ...]
    now: float


@dataclass(frozen=True, slots=True)
class Nearest:
    entry: CacheEntry
    similarity: float


@dataclass(frozen=True, slots=True)
class PurgeCacheParams:
    now: float
    tenant: str | None = None  # None: every tenant
    namespace: str | None = None
    expired_only: bool = True


class AiCacheStore(Protocol):
    @property
    def supports_vector_search(self) -> bool: ...

    async def cache_put(self, params: PutCacheEntryParams) -> CacheEntry: ...

    async def cache_get(self, params: GetCacheEntryParams) -> CacheEntry | None: ...

    async def cache_scan_vectors(self, params: ScanCacheVectorsParams) -> list[CacheEntry]: ...

    async def cache_nearest(self, params: NearestCacheParams) -> Nearest | None:
        """Only called when ``supports_vector_search``."""
        ...

    async def cache_purge(self, params: PurgeCacheParams) -> int: ...
