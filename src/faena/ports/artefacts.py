"""The ArtefactStore port: artefact metadata, kept by the same store as jobs (each store class
mixes in its adapter, as for workflows and workers). The bytes are in a :mod:`BlobStore
<faena.ports.blobs>`; this port also keeps the document-result cache, keyed by content hash."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from faena.domain.artefacts import Artefact


@dataclass(frozen=True, slots=True)
class ListArtefactsParams:
    """Newest first; ``cursor`` is the id of the last artefact of the previous page."""

    tenant: str
    limit: int = 50
    cursor: str | None = None
    job_id: str | None = None


@dataclass(frozen=True, slots=True)
class ArtefactPage:
    artefacts: list[Artefact]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class PurgeArtefactsParams:
    """Delete up to ``limit`` artefacts whose ``expires_at`` is before ``now``, or (when
    ``created_before`` is set) created before it; return them so their bytes can go too."""

    now: float
    created_before: float | None = None
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class CacheKey:
    """A cached document result: the tenant, the sha256 of the input and a digest of the
    options that shaped the result."""

    tenant: str
    kind: str
    sha256: str
    options: str


class ArtefactStore(Protocol):
    async def add_artefact(self, artefact: Artefact) -> None: ...

    async def add_artefact_for_source(self, artefact: Artefact, source_key: str) -> Artefact:
        """Insert ``artefact`` unless its tenant has one stored for ``source_key`` already (a
        mail attachment: watch, UIDVALIDITY, UID, part); return the one that is kept."""

    async def artefact_for_source(self, tenant: str, source_key: str) -> Artefact | None: ...

    async def get_artefact(self, tenant: str, artefact_id: str) -> Artefact | None: ...

    async def list_artefacts(self, params: ListArtefactsParams) -> ArtefactPage: ...

    async def delete_artefact(self, tenant: str, artefact_id: str) -> Artefact | None:
        """Remove the metadata; return what was removed (None: there was nothing)."""

    async def purge_artefacts(self, params: PurgeArtefactsParams) -> list[Artefact]: ...

    async def get_cached_result(self, key: CacheKey) -> Any | None: ...

    async def cached_result_for_artefact(
        self, tenant: str, artefact_id: str, kind: str, options: str
    ) -> tuple[str, Any | None] | None:
        """The cache hit path in one read: the artefact's sha256 and the cached result for it
        (None: not cached); None when the tenant has no such artefact."""

    async def put_cached_result(self, key: CacheKey, result: Any, now: float) -> None: ...

    async def purge_cached_results(self, before: float, limit: int = 1000) -> int: ...
