"""The ArtefactStore contract, on memory, SQLite and PostgreSQL: tenant-scoped metadata,
newest-first pages, purges by expiry or age, and the document-result cache."""

from __future__ import annotations

from typing import Any

from faena.domain.artefacts import Artefact
from faena.domain.ids import new_id
from faena.ports.artefacts import CacheKey, ListArtefactsParams, PurgeArtefactsParams


def _artefact(tenant: str = "default", **fields: Any) -> Artefact:
    values: dict[str, Any] = {
        "id": new_id(),
        "tenant": tenant,
        "name": "report.pdf",
        "content_type": "application/pdf",
        "size": 1234,
        "sha256": "ab" * 32,
        "created_at": 1000.0,
    }
    values.update(fields)
    return Artefact(**values)


async def test_an_artefact_reads_back_only_in_its_tenant(store: Any) -> None:
    a = _artefact(job_id=new_id(), expires_at=5000.0)
    await store.add_artefact(a)
    assert await store.get_artefact("default", a.id) == a
    assert await store.get_artefact("other", a.id) is None
    assert await store.get_artefact("default", new_id()) is None


async def test_artefacts_list_newest_first_in_pages(store: Any) -> None:
    made = [_artefact() for _ in range(5)]
    for a in made:
        await store.add_artefact(a)
    await store.add_artefact(_artefact("other"))
    first = await store.list_artefacts(ListArtefactsParams("default", limit=3))
    assert [a.id for a in first.artefacts] == [a.id for a in reversed(made)][:3]
    assert first.next_cursor == made[2].id
    rest = await store.list_artefacts(
        ListArtefactsParams("default", limit=3, cursor=first.next_cursor)
    )
    assert [a.id for a in rest.artefacts] == [made[1].id, made[0].id]
    assert rest.next_cursor is None


async def test_artefacts_list_by_job(store: Any) -> None:
    job = new_id()
    mine = _artefact(job_id=job)
    await store.add_artefact(mine)
    await store.add_artefact(_artefact())
    page = await store.list_artefacts(ListArtefactsParams("default", job_id=job))
    assert [a.id for a in page.artefacts] == [mine.id]


async def test_deleting_returns_what_went_and_only_in_the_tenant(store: Any) -> None:
    a = _artefact()
    await store.add_artefact(a)
    assert await store.delete_artefact("other", a.id) is None
    assert await store.delete_artefact("default", a.id) == a
    assert await store.delete_artefact("default", a.id) is None
    assert await store.get_artefact("default", a.id) is None


async def test_purge_takes_expired_and_old_artefacts_in_batches(store: Any) -> None:
    expired = _artefact(expires_at=100.0, created_at=50.0)
    old = _artefact(created_at=10.0)
    kept = _artefact(created_at=900.0, expires_at=2000.0)
    for a in (expired, old, kept):
        await store.add_artefact(a)
    only_expired = await store.purge_artefacts(PurgeArtefactsParams(now=500.0))
    assert [a.id for a in only_expired] == [expired.id]
    first = await store.purge_artefacts(
        PurgeArtefactsParams(now=500.0, created_before=800.0, limit=1)
    )
    assert [a.id for a in first] == [old.id]
    assert await store.purge_artefacts(PurgeArtefactsParams(now=500.0, created_before=800.0)) == []
    assert await store.get_artefact("default", kept.id) == kept


async def test_cached_results_are_per_tenant_kind_hash_and_options(store: Any) -> None:
    key = CacheKey("default", "ocr", "cd" * 32, "opts1")
    result = {"text": "hello", "pages": [{"number": 1, "text": "hello", "confidence": 91.5}]}
    assert await store.get_cached_result(key) is None
    await store.put_cached_result(key, result, 100.0)
    assert await store.get_cached_result(key) == result
    for other in (
        CacheKey("other", "ocr", "cd" * 32, "opts1"),
        CacheKey("default", "document.text", "cd" * 32, "opts1"),
        CacheKey("default", "ocr", "cd" * 32, "opts2"),
    ):
        assert await store.get_cached_result(other) is None
    await store.put_cached_result(key, {"text": "newer"}, 200.0)
    assert await store.get_cached_result(key) == {"text": "newer"}


async def test_cached_results_older_than_a_time_are_purged(store: Any) -> None:
    old = CacheKey("default", "ocr", "01" * 32, "o")
    fresh = CacheKey("default", "ocr", "02" * 32, "o")
    await store.put_cached_result(old, {"text": "a"}, 100.0)
    await store.put_cached_result(fresh, {"text": "b"}, 300.0)
    assert await store.purge_cached_results(200.0) == 1
    assert await store.get_cached_result(old) is None
    assert await store.get_cached_result(fresh) == {"text": "b"}


async def test_the_hit_path_reads_an_artefacts_hash_and_result_at_once(store: Any) -> None:
    a = _artefact()
    await store.add_artefact(a)
    assert await store.cached_result_for_artefact("default", a.id, "ocr", "o") == (a.sha256, None)
    await store.put_cached_result(CacheKey("default", "ocr", a.sha256, "o"), {"text": "t"}, 1.0)
    found = await store.cached_result_for_artefact("default", a.id, "ocr", "o")
    assert found == (a.sha256, {"text": "t"})
    assert await store.cached_result_for_artefact("default", a.id, "ocr", "other") == (
        a.sha256, None,
    )  # fmt: skip
    assert await store.cached_result_for_artefact("other", a.id, "ocr", "o") is None
    assert await store.cached_result_for_artefact("default", new_id(), "ocr", "o") is None


async def test_an_artefact_for_a_source_is_stored_once_per_tenant(store: Any) -> None:
    """The second artefact for the same source key is not stored: the first one is returned;
    another tenant's source of the same name is its own."""
    first = _artefact()
    assert await store.add_artefact_for_source(first, "mail:w:1:7:0") == first
    again = await store.add_artefact_for_source(_artefact(), "mail:w:1:7:0")
    assert again == first
    assert await store.artefact_for_source("default", "mail:w:1:7:0") == first
    theirs = _artefact("other")
    assert await store.add_artefact_for_source(theirs, "mail:w:1:7:0") == theirs
    assert await store.artefact_for_source("default", "mail:w:1:7:1") is None
    page = await store.list_artefacts(ListArtefactsParams("default"))
    assert [a.id for a in page.artefacts] == [first.id]
