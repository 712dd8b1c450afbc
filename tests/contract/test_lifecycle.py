"""Opening, health and schema version."""

from __future__ import annotations

from faena.ports.store import JobStore
from tests.contract.support import submit_one


async def test_opening_an_open_store_again_is_harmless(store: JobStore) -> None:
    """open() is idempotent: the data and the connection stay."""
    job = await submit_one(store)
    await store.open()
    assert await store.get("default", job.id) == job


async def test_ping_answers_when_the_store_is_up(store: JobStore) -> None:
    """ping() returns without error on a working store."""
    await store.ping()


async def test_schema_version_is_known_after_open(store: JobStore) -> None:
    """A migrated store reports a positive schema version."""
    assert await store.schema_version() >= 1


async def test_store_declares_whether_it_can_notify(store: JobStore) -> None:
    """supports_notify is a plain boolean capability."""
    assert isinstance(store.supports_notify, bool)
