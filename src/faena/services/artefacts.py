"""Artefacts: store, read, list and delete files for a tenant, and purge them with retention.

The bytes go to the blob store first and the metadata to the store second, so a listed
artefact always has its bytes; a crash between the two leaves unreferenced bytes, never a
dangling row. Deletion goes the other way round (metadata, then bytes).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable

import structlog

from faena.domain.artefacts import (
    Artefact,
    blob_key,
    clean_name,
    is_artefact_id,
    valid_content_type,
)
from faena.domain.errors import NotFound, PayloadTooLarge, ValidationError
from faena.domain.ids import new_id
from faena.ports.artefacts import (
    ArtefactPage,
    ArtefactStore,
    ListArtefactsParams,
    PurgeArtefactsParams,
)
from faena.ports.blobs import BlobStore, BlobWritten
from faena.ports.clock import Clock

log = structlog.get_logger("faena.artefacts")

DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_PAGE = 500


class ArtefactService:
    def __init__(
        self,
        store: ArtefactStore,
        blobs: BlobStore,
        clock: Clock,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        retention_s: float = 0.0,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self._store = store
        self.blobs = blobs
        self._clock = clock
        self.max_bytes = max_bytes
        self._retention_s = retention_s
        self._deleted: list[Callable[[str, str], None]] = []

    def on_delete(self, listener: Callable[[str, str], None]) -> None:
        """Call ``listener(tenant, artefact_id)`` when this process deletes an artefact (the
        document kinds' memo forgets it)."""
        self._deleted.append(listener)

    async def put(
        self,
        tenant: str,
        name: str,
        content_type: str,
        data: bytes,
        *,
        job_id: str | None = None,
        source_key: str | None = None,
    ) -> Artefact:
        """Store ``data`` as a new artefact. PayloadTooLarge past ``max_bytes``.

        With ``source_key`` (where the bytes came from: a mail attachment's watch, UIDVALIDITY,
        UID and part) it is stored once: a second put for the same key returns the first
        artefact and writes nothing (a message read again after a crash)."""
        if len(data) > self.max_bytes:
            raise PayloadTooLarge(self._too_large(len(data)))
        if source_key is not None:
            found = await self._store.artefact_for_source(tenant, source_key)
            if found is not None:
                return found
        artefact_id = new_id()
        ctype = self._content_type(content_type)
        written = await self.blobs.put(blob_key(tenant, artefact_id), data)
        return await self._record(
            tenant,
            artefact_id=artefact_id,
            name=name,
            content_type=ctype,
            written=written,
            job_id=job_id,
            source_key=source_key,
        )

    async def put_stream(
        self,
        tenant: str,
        name: str,
        content_type: str,
        chunks: AsyncIterable[bytes],
        *,
        job_id: str | None = None,
        declared_size: int | None = None,
    ) -> Artefact:
        """Store an upload as it arrives, without holding it in memory. A ``declared_size``
        (Content-Length) above the limit is refused before a byte is read."""
        if declared_size is not None and declared_size > self.max_bytes:
            raise PayloadTooLarge(self._too_large(declared_size))
        artefact_id = new_id()
        ctype = self._content_type(content_type)
        key = blob_key(tenant, artefact_id)
        try:
            written = await self.blobs.put_stream(key, chunks, max_bytes=self.max_bytes)
        except PayloadTooLarge:
            raise PayloadTooLarge(self._too_large(None)) from None
        if written.size == 0:
            await self.blobs.delete(key)
            raise ValidationError("the artefact is empty: send its bytes as the request body")
        return await self._record(
            tenant,
            artefact_id=artefact_id,
            name=name,
            content_type=ctype,
            written=written,
            job_id=job_id,
        )

    async def info(self, tenant: str, artefact_id: str) -> Artefact:
        """The metadata; NotFound for an unknown id or another tenant's."""
        if not is_artefact_id(artefact_id):
            raise NotFound(f"artefact {artefact_id!r} not found")
        found = await self._store.get_artefact(tenant, artefact_id)
        if found is None:
            raise NotFound(f"artefact {artefact_id!r} not found")
        return found

    async def get(self, tenant: str, artefact_id: str) -> tuple[Artefact, bytes]:
        artefact = await self.info(tenant, artefact_id)
        try:
            data = await self.blobs.get(blob_key(tenant, artefact_id))
        except NotFound:
            raise NotFound(f"artefact {artefact_id!r} has lost its content") from None
        return artefact, data

    async def open(self, tenant: str, artefact_id: str) -> tuple[Artefact, AsyncIterator[bytes]]:
        """The metadata and a stream of the content (for downloads)."""
        artefact = await self.info(tenant, artefact_id)
        key = blob_key(tenant, artefact_id)
        if not await self.blobs.exists(key):
            raise NotFound(f"artefact {artefact_id!r} has lost its content")
        return artefact, self.blobs.stream(key)

    async def list(
        self, tenant: str, *, limit: int = 50, cursor: str | None = None, job_id: str | None = None
    ) -> ArtefactPage:
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError(f"limit must be between 1 and {MAX_PAGE}")
        if cursor is not None and not is_artefact_id(cursor):
            raise ValidationError("cursor is not an artefact id")
        return await self._store.list_artefacts(
            ListArtefactsParams(tenant=tenant, limit=limit, cursor=cursor, job_id=job_id)
        )

    async def delete(self, tenant: str, artefact_id: str) -> None:
        """Delete the metadata, then the bytes. NotFound for an unknown or foreign id."""
        if not is_artefact_id(artefact_id):
            raise NotFound(f"artefact {artefact_id!r} not found")
        removed = await self._store.delete_artefact(tenant, artefact_id)
        if removed is None:
            raise NotFound(f"artefact {artefact_id!r} not found")
        await self._delete_bytes(removed)

    async def purge_expired(self, *, batch: int = 500) -> int:
        """Delete artefacts past their ``expires_at``, metadata and bytes; return how many."""
        purged = 0
        while True:
            now = self._clock.now()
            created_before = now - self._retention_s if self._retention_s > 0 else None
            gone = await self._store.purge_artefacts(
                PurgeArtefactsParams(now=now, created_before=created_before, limit=batch)
            )
            for artefact in gone:
                await self._delete_bytes(artefact)
            purged += len(gone)
            if len(gone) < batch:
                break
            await asyncio.sleep(0)
        if purged:
            log.info("expired artefacts purged", artefacts=purged)
        return purged

    async def purge_cache(self, keep_s: float, *, batch: int = 1000) -> int:
        """Delete cached document results older than ``keep_s``; return how many."""
        before = self._clock.now() - keep_s
        purged = 0
        while True:
            n = await self._store.purge_cached_results(before, batch)
            purged += n
            if n < batch:
                return purged
            await asyncio.sleep(0)

    async def _record(
        self,
        tenant: str,
        *,
        artefact_id: str,
        name: str,
        content_type: str,
        written: BlobWritten,
        job_id: str | None,
        source_key: str | None = None,
    ) -> Artefact:
        now = self._clock.now()
        artefact = Artefact(
            id=artefact_id,
            tenant=tenant,
            name=clean_name(name),
            content_type=content_type,
            size=written.size,
            sha256=written.sha256,
            created_at=now,
            job_id=job_id,
            expires_at=now + self._retention_s if self._retention_s > 0 else None,
        )
        try:
            if source_key is None:
                await self._store.add_artefact(artefact)
                return artefact
            kept = await self._store.add_artefact_for_source(artefact, source_key)
        except BaseException:
            await self._delete_bytes(artefact)
            raise
        if kept.id != artefact.id:  # another server stored it first: keep theirs only
            await self._delete_bytes(artefact)
        return kept

    async def _delete_bytes(self, artefact: Artefact) -> None:
        for listener in self._deleted:
            listener(artefact.tenant, artefact.id)
        try:
            await self.blobs.delete(blob_key(artefact.tenant, artefact.id))
        except Exception:  # the metadata is gone; orphan bytes are harmless, log them
            log.exception("artefact bytes not deleted", artefact=artefact.id)

    def _content_type(self, value: str | None) -> str:
        if not value:
            return DEFAULT_CONTENT_TYPE
        if not valid_content_type(value):
            raise ValidationError(f"bad content type {value[:80]!r}: expected type/subtype")
        return value

    def _too_large(self, size: int | None) -> str:
        got = f" ({size} bytes)" if size is not None else ""
        return f"artefact too large{got}: the limit is {self.max_bytes} bytes"
