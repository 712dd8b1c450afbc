"""Fixtures of the documents and artefacts tests: every store (memory, SQLite, PostgreSQL), both
blob stores (a local directory, and S3 on a real moto server on 127.0.0.1), and the reader's
process pool."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from faena.adapters.blobs.local import LocalDirBlobStore
from faena.ports.blobs import BlobStore
from tests.contract.conftest import BACKENDS

S3_KEYS = {"access_key": "testing", "secret_key": "testing"}


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """A fresh, migrated store of each backend (PostgreSQL: skip locally, fail in CI)."""
    found = await BACKENDS[request.param](tmp_path)
    await found.open()
    try:
        yield found
    finally:
        await found.close()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real S3-compatible server (moto) on a free local port, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


async def make_s3(endpoint: str, bucket: str | None = None, prefix: str = "faena") -> Any:
    from faena.adapters.blobs.s3 import S3BlobStore, parse_s3_url

    name = bucket or f"b-{uuid.uuid4().hex[:12]}"
    blobs = S3BlobStore(parse_s3_url(f"s3://{name}/{prefix}?endpoint={endpoint}"), **S3_KEYS)
    await blobs.ensure_bucket()
    return blobs


@pytest.fixture(params=["local", "s3"])
async def blobs(
    request: pytest.FixtureRequest, tmp_path: Path, moto_endpoint: str
) -> AsyncIterator[BlobStore]:
    found: BlobStore
    if request.param == "local":
        found = LocalDirBlobStore(tmp_path / "artefacts")
    else:
        found = await make_s3(moto_endpoint)
    try:
        yield found
    finally:
        await found.aclose()
