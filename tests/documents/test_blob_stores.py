"""Both blob stores keep the same promises: bytes by key, atomic writes, a size limit that
leaves nothing behind, NotFound for a missing key, idempotent deletes."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from faena.adapters.blobs.local import LocalDirBlobStore
from faena.adapters.blobs.s3 import parse_s3_url
from faena.domain.errors import NotFound, PayloadTooLarge, ValidationError
from faena.ports.blobs import BlobStore


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_a_blob_reads_back_as_written(blobs: BlobStore) -> None:
    data = os.urandom(3000)
    written = await blobs.put("ab/one", data)
    assert written.size == 3000
    assert written.sha256 == hashlib.sha256(data).hexdigest()
    assert await blobs.get("ab/one") == data
    assert await blobs.exists("ab/one")


async def test_a_streamed_blob_is_counted_hashed_and_read_back_in_chunks(blobs: BlobStore) -> None:
    parts = [os.urandom(700_000) for _ in range(3)]  # 2.1 MB: several read chunks
    written = await blobs.put_stream("cd/two", _chunks(*parts), max_bytes=10_000_000)
    whole = b"".join(parts)
    assert (written.size, written.sha256) == (len(whole), hashlib.sha256(whole).hexdigest())
    read = [chunk async for chunk in blobs.stream("cd/two")]
    assert len(read) >= 2
    assert b"".join(read) == whole


async def test_a_stream_over_the_limit_is_refused_and_leaves_nothing(blobs: BlobStore) -> None:
    with pytest.raises(PayloadTooLarge):
        await blobs.put_stream("ef/big", _chunks(b"x" * 600, b"y" * 600), max_bytes=1000)
    assert not await blobs.exists("ef/big")
    with pytest.raises(NotFound):
        await blobs.get("ef/big")


async def test_a_missing_blob_is_not_found_and_deleting_it_is_no_error(blobs: BlobStore) -> None:
    with pytest.raises(NotFound):
        await blobs.get("no/such")
    with pytest.raises(NotFound):
        async for _ in blobs.stream("no/such"):
            pass
    await blobs.delete("no/such")
    assert not await blobs.exists("no/such")


async def test_a_deleted_blob_is_gone(blobs: BlobStore) -> None:
    await blobs.put("gh/three", b"bytes")
    await blobs.delete("gh/three")
    assert not await blobs.exists("gh/three")


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a/../../b", "", "a b", "a//b"])
async def test_keys_that_could_escape_the_root_are_refused(blobs: BlobStore, key: str) -> None:
    with pytest.raises(ValidationError):
        await blobs.put(key, b"x")


async def test_a_local_write_goes_through_a_temporary_file_removed_after(tmp_path: Path) -> None:
    blobs = LocalDirBlobStore(tmp_path)
    with pytest.raises(PayloadTooLarge):
        await blobs.put_stream("ij/four", _chunks(b"x" * 2000), max_bytes=1000)
    await blobs.put("ij/five", b"ok")
    assert list((tmp_path / ".tmp").iterdir()) == []
    assert (tmp_path / "ij" / "five").read_bytes() == b"ok"


def test_s3_urls_name_bucket_prefix_endpoint_and_region() -> None:
    loc = parse_s3_url("s3://bucket/a/b?endpoint=http://127.0.0.1:9000&region=eu-west-1")
    assert (loc.bucket, loc.prefix, loc.endpoint, loc.region) == (
        "bucket", "a/b/", "http://127.0.0.1:9000", "eu-west-1",
    )  # fmt: skip
    assert parse_s3_url("s3://bucket").prefix == ""
    for bad in ("s3:///nobucket", "http://x/y", "s3://b?endpoint=ftp://x", "s3://b?colour=red"):
        with pytest.raises(ValidationError):
            parse_s3_url(bad)
