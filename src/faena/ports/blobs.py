"""The BlobStore port: bytes by key, for artefacts. Metadata is the store's business
(:mod:`faena.ports.artefacts`); a blob store only keeps bytes.

Adapters: a local directory (the default, ``$FAENA_HOME/artefacts``) and S3-compatible object
storage (several servers share it). Writes are atomic: a reader never sees half a blob.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol

CHUNK = 1 << 20  # the unit of streaming reads and writes


@dataclass(frozen=True, slots=True)
class BlobWritten:
    size: int
    sha256: str  # hex digest of what was written


class BlobStore(Protocol):
    """Bytes by key. ``get``/``stream`` raise NotFound for a missing key; ``delete`` of a missing
    key is not an error (retention and a client may race)."""

    name: str  # "local" or "s3", for logs and /readyz

    async def put(self, key: str, data: bytes) -> BlobWritten: ...

    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], *, max_bytes: int
    ) -> BlobWritten:
        """Write chunks as they come. More than ``max_bytes`` raises PayloadTooLarge and leaves
        nothing behind."""
        ...

    async def get(self, key: str) -> bytes: ...

    def stream(self, key: str) -> AsyncIterator[bytes]:
        """The blob in chunks of about :data:`CHUNK` bytes (NotFound raised on first read)."""
        ...

    async def delete(self, key: str) -> None: ...

    async def exists(self, key: str) -> bool: ...

    async def aclose(self) -> None: ...
