"""A BlobStore in a local directory (``$FAENA_HOME/artefacts`` by default).

A write goes to a temporary file in the same directory tree, is fsynced, then renamed into
place and the directory fsynced: a crash leaves either the whole blob or none of it. File I/O
runs in threads so a slow disk never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import BinaryIO

from faena.domain.errors import NotFound, PayloadTooLarge, ValidationError
from faena.ports.blobs import CHUNK, BlobWritten

_KEY = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}(/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}){0,3}$")
_TMP = ".tmp"


def check_key(key: str) -> str:
    """Keys are relative paths of plain names: nothing can climb out of the root."""
    if not _KEY.match(key) or ".." in key:
        raise ValidationError(f"bad blob key {key[:80]!r}")
    return key


class LocalDirBlobStore:
    name = "local"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalDirBlobStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(self, key: str, data: bytes) -> BlobWritten:
        async def one() -> AsyncIterator[bytes]:
            yield data

        return await self.put_stream(key, one(), max_bytes=max(len(data), 1))

    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], *, max_bytes: int
    ) -> BlobWritten:
        path = self._path(key)
        f, tmp = await asyncio.to_thread(self._open_temp)
        digest = hashlib.sha256()
        size = 0
        done = False
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(f"blob larger than {max_bytes} bytes")
                digest.update(chunk)
                await asyncio.to_thread(f.write, chunk)
            await asyncio.to_thread(self._commit, f, tmp, path)
            done = True
        finally:
            if not done:
                await asyncio.to_thread(self._discard, f, tmp)
        return BlobWritten(size=size, sha256=digest.hexdigest())

    def _open_temp(self) -> tuple[BinaryIO, str]:
        tmp = self.root / _TMP
        tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp, prefix="put-")
        return os.fdopen(fd, "wb"), name

    @staticmethod
    def _commit(f: BinaryIO, tmp: str, path: Path) -> None:
        f.flush()
        os.fsync(f.fileno())
        f.close()
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @staticmethod
    def _discard(f: BinaryIO, tmp: str) -> None:
        with contextlib.suppress(OSError):
            f.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise NotFound(f"blob {key!r} not found") from None

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            f = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {key!r} not found") from None
        try:
            while chunk := await asyncio.to_thread(f.read, CHUNK):
                yield chunk
        finally:
            f.close()

    async def delete(self, key: str) -> None:
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(path.unlink)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def aclose(self) -> None:
        return None
