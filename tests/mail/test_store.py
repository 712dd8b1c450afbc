"""The MailStore contract, on the in-memory, SQLite and PostgreSQL stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from faena.domain.errors import Conflict, NotFound
from faena.domain.ids import new_id
from faena.domain.mail import MailMessageRecord, MailWatch, parse_watch
from faena.ports.mail import AcquireWatchParams, AdvanceWatchParams, ListMessagesParams
from tests.contract.conftest import BACKENDS


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    found = await BACKENDS[request.param](tmp_path)
    await found.open()
    try:
        yield found
    finally:
        await found.close()


def _watch(name: str = "inbox", tenant: str = "acme", **doc: Any) -> MailWatch:
    spec = {
        "name": name,
        "host": "imap.example.org",
        "username": "bot",
        "password_secret": "IMAP",
        "workflow": "intake",
        "rules": [{"match": {"subject": "invoice"}, "workflow": "invoices"}],
        **doc,
    }
    return parse_watch(spec, tenant=tenant, watch_id=new_id(), now=1000.0)


async def test_a_watch_is_stored_with_its_definition_and_found_by_name(store: Any) -> None:
    created = await store.create_watch(_watch(action="move", move_to="Done", poll_s=5))
    found = await store.get_watch("acme", "inbox")
    assert found == created
    assert found.rules[0].workflow == "invoices" and found.move_to == "Done"
    assert found.poll_s == 5.0 and found.last_uid == 0 and found.uidvalidity is None
    assert await store.get_watch("other", "inbox") is None
    assert [w.name for w in await store.list_watches("acme")] == ["inbox"]
    assert await store.list_watches("other") == []


async def test_a_second_watch_of_the_same_name_is_a_conflict(store: Any) -> None:
    await store.create_watch(_watch())
    with pytest.raises(Conflict):
        await store.create_watch(_watch())
    await store.create_watch(_watch(tenant="other"))  # another tenant's namespace
    assert len(await store.all_watches()) == 2


async def test_one_owner_holds_a_lease_until_it_expires(store: Any) -> None:
    watch = await store.create_watch(_watch())
    assert await store.acquire_watch(AcquireWatchParams(watch.id, "a", 100.0, 30.0))
    assert not await store.acquire_watch(AcquireWatchParams(watch.id, "b", 110.0, 30.0))
    assert await store.acquire_watch(AcquireWatchParams(watch.id, "a", 120.0, 30.0))  # renew
    assert not await store.acquire_watch(AcquireWatchParams(watch.id, "b", 149.0, 30.0))
    assert await store.acquire_watch(AcquireWatchParams(watch.id, "b", 151.0, 30.0))  # expired
    await store.release_watch(watch.id, "a")  # not a's any more: no effect
    assert (await store.get_watch("acme", "inbox")).lease_owner == "b"
    await store.release_watch(watch.id, "b")
    assert await store.acquire_watch(AcquireWatchParams(watch.id, "c", 152.0, 30.0))


async def test_progress_is_recorded_only_by_the_lease_holder(store: Any) -> None:
    watch = await store.create_watch(_watch())
    assert await store.acquire_watch(AcquireWatchParams(watch.id, "a", 100.0, 30.0))
    assert await store.advance_watch(
        AdvanceWatchParams(watch.id, "a", 77, 5, 101.0, None, processed=4, parked=1)
    )
    assert not await store.advance_watch(AdvanceWatchParams(watch.id, "b", 77, 9, 102.0))
    found = await store.get_watch("acme", "inbox")
    assert (found.uidvalidity, found.last_uid, found.processed, found.parked) == (77, 5, 4, 1)
    assert await store.advance_watch(AdvanceWatchParams(watch.id, "a", 77, 5, 103.0, "down"))
    assert (await store.get_watch("acme", "inbox")).last_error == "down"


async def test_a_message_is_recorded_once_and_listed_per_tenant(store: Any) -> None:
    watch = await store.create_watch(_watch())
    first = MailMessageRecord(watch.id, 77, 1, "ingested", 100.0, run_id="r1", subject="Hi")
    assert await store.record_message(first)
    assert not await store.record_message(
        MailMessageRecord(watch.id, 77, 1, "parked", 101.0, reason="again")
    )
    assert await store.record_message(
        MailMessageRecord(watch.id, 78, 1, "parked", 102.0, reason="x")
    )
    assert await store.get_message(watch.id, 77, 1) == first
    assert await store.get_message(watch.id, 77, 2) is None
    listed = await store.list_messages(ListMessagesParams("acme", watch.id))
    assert [(m.uidvalidity, m.state) for m in listed] == [(78, "parked"), (77, "ingested")]
    parked = await store.list_messages(ListMessagesParams("acme", watch.id, state="parked"))
    assert [m.reason for m in parked] == ["x"]
    assert await store.list_messages(ListMessagesParams("other", watch.id)) == []


async def test_removing_a_watch_removes_its_messages(store: Any) -> None:
    watch = await store.create_watch(_watch())
    await store.record_message(MailMessageRecord(watch.id, 1, 1, "ingested", 1.0))
    await store.delete_watch("acme", "inbox")
    assert await store.get_watch("acme", "inbox") is None
    assert await store.get_message(watch.id, 1, 1) is None
    with pytest.raises(NotFound):
        await store.delete_watch("acme", "inbox")
    with pytest.raises(NotFound):
        await store.record_message(MailMessageRecord(watch.id, 1, 2, "ingested", 1.0))


async def test_the_records_of_a_batch_of_uids_are_read_at_once(store: Any) -> None:
    watch = await store.create_watch(_watch())
    for uid in (1, 3, 5):
        await store.record_message(MailMessageRecord(watch.id, 9, uid, "ingested", float(uid)))
    await store.record_message(MailMessageRecord(watch.id, 8, 2, "parked", 1.0))
    found = await store.get_messages(watch.id, 9, [1, 2, 3, 4])
    assert sorted(m.uid for m in found) == [1, 3]
    assert await store.get_messages(watch.id, 9, []) == []
