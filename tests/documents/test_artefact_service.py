"""The ArtefactService: bytes in the blob store, metadata in the store, a size limit, and
retention that removes both."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from faena.adapters.memory.store import MemoryStore
from faena.config import Settings
from faena.domain.artefacts import artefact_refs, blob_key, clean_name
from faena.domain.errors import NotFound, PayloadTooLarge, ValidationError
from faena.ports.blobs import BlobStore
from faena.services.artefacts import ArtefactService
from faena.services.retention import DAY_S


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.t = now

    def now(self) -> float:
        return self.t


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.fixture
async def service(blobs: BlobStore) -> ArtefactService:
    store = MemoryStore()
    await store.open()
    return ArtefactService(store, blobs, FakeClock(), max_bytes=1000, retention_s=10 * DAY_S)


async def test_put_keeps_bytes_and_metadata(service: ArtefactService) -> None:
    a = await service.put("t1", "../../etc/Report.PDF", "application/pdf", b"%PDF-data")
    assert (a.name, a.size, a.content_type) == ("Report.PDF", 9, "application/pdf")
    assert a.sha256 == hashlib.sha256(b"%PDF-data").hexdigest()
    assert a.expires_at == a.created_at + 10 * DAY_S
    got, data = await service.get("t1", a.id)
    assert (got, data) == (a, b"%PDF-data")
    assert await service.info("t1", a.id) == a


async def test_another_tenant_sees_nothing(service: ArtefactService) -> None:
    a = await service.put("t1", "a.txt", "text/plain", b"hello")
    for call in (service.info, service.get, service.delete):
        with pytest.raises(NotFound):
            await call("t2", a.id)
    assert (await service.get("t1", a.id))[1] == b"hello"


async def test_too_large_is_refused_with_the_limit(service: ArtefactService) -> None:
    with pytest.raises(PayloadTooLarge, match="1000 bytes"):
        await service.put("t1", "big", "text/plain", b"x" * 1001)
    with pytest.raises(PayloadTooLarge):
        await service.put_stream("t1", "big", "", _chunks(b"x" * 600, b"x" * 600))
    with pytest.raises(PayloadTooLarge):
        await service.put_stream("t1", "big", "", _chunks(b"x"), declared_size=5000)
    assert (await service.list("t1")).artefacts == []


async def test_a_streamed_upload_is_stored_whole(service: ArtefactService) -> None:
    a = await service.put_stream("t1", "s.bin", "", _chunks(b"ab", b"cd", b"ef"))
    assert a.content_type == "application/octet-stream"
    assert (await service.get("t1", a.id))[1] == b"abcdef"


async def test_bad_input_is_a_clear_validation_error(service: ArtefactService) -> None:
    with pytest.raises(ValidationError, match="content type"):
        await service.put("t1", "a", "not a type", b"x")
    with pytest.raises(ValidationError, match="empty"):
        await service.put_stream("t1", "a", "", _chunks())
    with pytest.raises(ValidationError, match="limit"):
        await service.list("t1", limit=0)
    with pytest.raises(NotFound):
        await service.info("t1", "not-an-id")


async def test_delete_removes_the_bytes(service: ArtefactService) -> None:
    a = await service.put("t1", "a", "text/plain", b"x")
    await service.delete("t1", a.id)
    assert not await service.blobs.exists(blob_key("t1", a.id))
    with pytest.raises(NotFound):
        await service.delete("t1", a.id)


async def test_a_put_for_a_known_source_returns_the_first_artefact_and_writes_nothing(
    service: ArtefactService,
) -> None:
    first = await service.put("t1", "a.pdf", "application/pdf", b"one", source_key="mail:w:1:2:0")
    again = await service.put("t1", "a.pdf", "application/pdf", b"one", source_key="mail:w:1:2:0")
    assert again == first
    page = await service.list("t1")
    assert [a.id for a in page.artefacts] == [first.id]
    other = await service.put("t1", "b.pdf", "application/pdf", b"two", source_key="mail:w:1:2:1")
    assert other.id != first.id


async def test_a_source_stored_meanwhile_by_another_server_leaves_no_orphan_bytes(
    service: ArtefactService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two servers storing one attachment at once: both write bytes, the store keeps one
    artefact, and the one that lost deletes its bytes."""
    winner = await service.put("t1", "a.pdf", "application/pdf", b"one", source_key="k")
    written: list[str] = []
    deleted: list[str] = []
    put, delete = service.blobs.put, service.blobs.delete

    async def recording_put(key: str, data: bytes) -> Any:
        written.append(key)
        return await put(key, data)

    async def recording_delete(key: str) -> None:
        deleted.append(key)
        await delete(key)

    async def not_visible_yet(tenant: str, key: str) -> None:
        return None  # the other server's row had not committed when this one looked

    monkeypatch.setattr(service.blobs, "put", recording_put)
    monkeypatch.setattr(service.blobs, "delete", recording_delete)
    monkeypatch.setattr(service._store, "artefact_for_source", not_visible_yet)
    kept = await service.put("t1", "a.pdf", "application/pdf", b"one", source_key="k")
    assert kept == winner
    assert len(written) == 1 and deleted == written
    assert not await service.blobs.exists(written[0])
    assert await service.blobs.exists(blob_key("t1", winner.id))


async def test_retention_purges_metadata_and_bytes(blobs: BlobStore) -> None:
    store = MemoryStore()
    clock = FakeClock()
    service = ArtefactService(store, blobs, clock, retention_s=2 * DAY_S)
    old = await service.put("t1", "old", "text/plain", b"old")
    clock.t += DAY_S
    young = await service.put("t1", "young", "text/plain", b"young")
    clock.t += 1.5 * DAY_S
    assert await service.purge_expired() == 1
    assert not await blobs.exists(blob_key("t1", old.id))
    assert await blobs.exists(blob_key("t1", young.id))
    assert [a.id for a in (await service.list("t1")).artefacts] == [young.id]


async def test_the_runtime_wires_artefacts_and_their_retention(tmp_path: Path) -> None:
    from faena.bootstrap import build_runtime

    runtime = build_runtime(
        Settings(database_url="memory://", home=tmp_path, artefact_retention_days=1)
    )
    await runtime.store.open()
    try:
        service = runtime.artefacts
        assert service is not None
        a = await service.put("default", "x.txt", "text/plain", b"x")
        assert (tmp_path / "artefacts" / blob_key("default", a.id)).read_bytes() == b"x"
        assert runtime.retention is not None
        service._clock = FakeClock(a.created_at + 2 * DAY_S)
        await runtime.retention.purge_once()
        assert not (tmp_path / "artefacts" / blob_key("default", a.id)).exists()
    finally:
        await runtime.store.close()


def test_references_to_artefacts_are_found_in_payloads() -> None:
    a, b = "0190a0a0-0000-7000-8000-000000000001", "0190a0a0-0000-7000-8000-000000000002"
    payload = {"artefact": a, "steps": [{"attach": {"artefact_id": b}}, {"artefact": "nope"}]}
    assert sorted(artefact_refs(payload)) == [a, b]
    assert clean_name("") == "artefact"
    assert clean_name("C:\\docs\\x\x00y.pdf") == "xy.pdf"
