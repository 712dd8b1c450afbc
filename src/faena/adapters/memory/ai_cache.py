"""The AiCacheStore in memory, mixed into :class:`~faena.adapters.memory.store.MemoryStore`."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

from faena.ports.ai_cache import (
    CacheEntry,
    GetCacheEntryParams,
    Nearest,
    NearestCacheParams,
    PurgeCacheParams,
    PutCacheEntryParams,
    ScanCacheVectorsParams,
)


@dataclass
class _CacheState:
    seq: int = 0
    entries: dict[tuple[str, str, str], CacheEntry] = field(default_factory=dict)


def _live(entry: CacheEntry, now: float) -> bool:
    return entry.expires_at is None or entry.expires_at > now


class MemoryAiCache:
    """The :class:`~faena.ports.ai_cache.AiCacheStore` operations of the in-memory store."""

    supports_vector_search = False

    def _ai_cache(self) -> _CacheState:
        state = self.__dict__.get("_ai_cache_state")
        if state is None:
            state = self.__dict__["_ai_cache_state"] = _CacheState()
        return state

    async def cache_put(self, params: PutCacheEntryParams) -> CacheEntry:
        state = self._ai_cache()
        state.seq += 1
        entry = CacheEntry(
            seq=state.seq,
            tenant=params.tenant,
            namespace=params.namespace,
            key=params.key,
            text=params.text,
            vector=params.vector,
            value=copy.deepcopy(params.value),
            created_at=params.now,
            expires_at=params.expires_at,
            model=params.model,
        )
        state.entries[(params.tenant, params.namespace, params.key)] = entry
        return entry

    async def cache_get(self, params: GetCacheEntryParams) -> CacheEntry | None:
        entry = self._ai_cache().entries.get((params.tenant, params.namespace, params.key))
        if entry is None or not _live(entry, params.now):
            return None
        return replace(entry, value=copy.deepcopy(entry.value))

    async def cache_scan_vectors(self, params: ScanCacheVectorsParams) -> list[CacheEntry]:
        found = [
            e
            for e in self._ai_cache().entries.values()
            if e.tenant == params.tenant
            and e.namespace == params.namespace
            and e.model == params.model
            and e.seq > params.after_seq
            and _live(e, params.now)
        ]
        found.sort(key=lambda e: e.seq)
        return found[: params.limit]

    async def cache_nearest(self, params: NearestCacheParams) -> Nearest | None:
        raise NotImplementedError("the memory store has no vector search")

    async def cache_purge(self, params: PurgeCacheParams) -> int:
        entries = self._ai_cache().entries
        doomed = [
            k
            for k, e in entries.items()
            if (params.tenant is None or e.tenant == params.tenant)
            and (params.namespace is None or e.namespace == params.namespace)
            and (not params.expired_only or not _live(e, params.now))
        ]
        for key in doomed:
            del entries[key]
        return len(doomed)
