"""The ArtefactStore in memory, mixed into :class:`~faena.adapters.memory.store.MemoryStore`.

Cached results are kept as encoded JSON, like job payloads, so a caller mutating what it got
back never changes the cache.
"""

from __future__ import annotations

from typing import Any

import orjson

from faena.domain.artefacts import Artefact
from faena.domain.errors import ValidationError
from faena.ports.artefacts import (
    ArtefactPage,
    CacheKey,
    ListArtefactsParams,
    PurgeArtefactsParams,
)


class _ArtefactState:
    __slots__ = ("artefacts", "cache", "sources")

    def __init__(self) -> None:
        self.artefacts: dict[str, Artefact] = {}
        self.cache: dict[CacheKey, tuple[bytes, float]] = {}
        self.sources: dict[tuple[str, str], str] = {}  # (tenant, source key) -> artefact id


class MemoryArtefacts:
    """The :class:`~faena.ports.artefacts.ArtefactStore` operations of the in-memory store."""

    def _artefact_state(self) -> _ArtefactState:
        state = self.__dict__.get("_artefact_registry")
        if state is None:
            state = self.__dict__["_artefact_registry"] = _ArtefactState()
        assert isinstance(state, _ArtefactState)
        return state

    async def add_artefact(self, artefact: Artefact) -> None:
        self._artefact_state().artefacts[artefact.id] = artefact

    async def add_artefact_for_source(self, artefact: Artefact, source_key: str) -> Artefact:
        found = self._for_source(artefact.tenant, source_key)
        if found is not None:
            return found
        state = self._artefact_state()
        state.artefacts[artefact.id] = artefact
        state.sources[(artefact.tenant, source_key)] = artefact.id
        return artefact

    async def artefact_for_source(self, tenant: str, source_key: str) -> Artefact | None:
        return self._for_source(tenant, source_key)

    def _for_source(self, tenant: str, source_key: str) -> Artefact | None:
        state = self._artefact_state()
        artefact_id = state.sources.get((tenant, source_key))
        return None if artefact_id is None else state.artefacts.get(artefact_id)

    async def get_artefact(self, tenant: str, artefact_id: str) -> Artefact | None:
        found = self._artefact_state().artefacts.get(artefact_id)
        return found if found is not None and found.tenant == tenant else None

    async def list_artefacts(self, params: ListArtefactsParams) -> ArtefactPage:
        rows = sorted(
            (
                a
                for a in self._artefact_state().artefacts.values()
                if a.tenant == params.tenant
                and (params.cursor is None or a.id < params.cursor)
                and (params.job_id is None or a.job_id == params.job_id)
            ),
            key=lambda a: a.id,
            reverse=True,
        )
        page = rows[: params.limit]
        more = len(rows) > params.limit
        return ArtefactPage(page, page[-1].id if more and page else None)

    async def delete_artefact(self, tenant: str, artefact_id: str) -> Artefact | None:
        state = self._artefact_state()
        found = state.artefacts.get(artefact_id)
        if found is None or found.tenant != tenant:
            return None
        del state.artefacts[artefact_id]
        return found

    async def purge_artefacts(self, params: PurgeArtefactsParams) -> list[Artefact]:
        state = self._artefact_state()
        gone = sorted(
            (a for a in state.artefacts.values() if _expired(a, params)), key=lambda a: a.id
        )[: params.limit]
        for a in gone:
            del state.artefacts[a.id]
        return gone

    async def get_cached_result(self, key: CacheKey) -> Any | None:
        found = self._artefact_state().cache.get(key)
        return None if found is None else orjson.loads(found[0])

    async def cached_result_for_artefact(
        self, tenant: str, artefact_id: str, kind: str, options: str
    ) -> tuple[str, Any | None] | None:
        found = await self.get_artefact(tenant, artefact_id)
        if found is None:
            return None
        return found.sha256, await self.get_cached_result(
            CacheKey(tenant, kind, found.sha256, options)
        )

    async def put_cached_result(self, key: CacheKey, result: Any, now: float) -> None:
        try:
            encoded = orjson.dumps(result)
        except TypeError as e:
            raise ValidationError(f"result is not JSON: {e}") from None
        self._artefact_state().cache[key] = (encoded, now)

    async def purge_cached_results(self, before: float, limit: int = 1000) -> int:
        cache = self._artefact_state().cache
        gone = [k for k, (_, at) in cache.items() if at < before][:limit]
        for k in gone:
            del cache[k]
        return len(gone)


def _expired(a: Artefact, params: PurgeArtefactsParams) -> bool:
    if a.expires_at is not None and a.expires_at <= params.now:
        return True
    return params.created_before is not None and a.created_at < params.created_before
