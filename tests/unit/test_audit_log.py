"""The audit service: entries get an id and a time, are group-committed, and a caller learns
when its entry could not be stored."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from faena.adapters.memory.store import MemoryStore
from faena.adapters.sqlite.store import SqliteStore
from faena.domain.audit import AuditEntry, outcome_of
from faena.domain.errors import Unavailable
from faena.ports.audit import AuditQuery
from faena.ports.clock import SystemClock
from faena.services.audit import AuditLog


async def listed(store: MemoryStore | SqliteStore) -> list[AuditEntry]:
    return (await store.list_audit(AuditQuery(tenant="a", limit=500))).entries


async def test_concurrent_entries_share_few_writes(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "a.db")
    await store.open()
    try:
        audit = AuditLog(store, SystemClock())
        await asyncio.gather(*(audit.record(AuditEntry("a", f"x{i}")) for i in range(200)))
        entries = await listed(store)
        assert len(entries) == 200 and all(e.id and e.at > 0 for e in entries)
        assert audit.written_total == 200
    finally:
        await store.close()


async def test_a_buffered_entry_is_written_by_close() -> None:
    store = MemoryStore()
    audit = AuditLog(store, SystemClock(), durable=False)
    await audit.record_call(AuditEntry("a", "jobs.submit"))
    await audit.close()
    assert [e.action for e in await listed(store)] == ["jobs.submit"]


async def test_a_durable_entry_is_stored_when_record_call_returns() -> None:
    store = MemoryStore()
    audit = AuditLog(store, SystemClock())
    await audit.record_call(AuditEntry("a", "jobs.submit"))
    assert len(await listed(store)) == 1


async def test_the_caller_learns_when_the_store_stays_away(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "closed.db")  # never opened: every write is Unavailable
    audit = AuditLog(store, SystemClock(), retry_delay_s=0.01, give_up_s=0.1)
    with pytest.raises(Unavailable):
        await audit.record(AuditEntry("a", "jobs.submit"))


def test_statuses_map_to_outcomes() -> None:
    assert [outcome_of(s) for s in (200, 201, 401, 403, 404, 500)] == [
        "ok", "ok", "denied", "denied", "error", "error"
    ]  # fmt: skip


async def test_each_write_tells_live_streams_how_many_entries_each_tenant_got() -> None:
    from faena.adapters.local_bus import LocalBus

    bus = LocalBus()
    audit = AuditLog(MemoryStore(), SystemClock(), bus=bus)
    with bus.subscribe() as events:
        await asyncio.gather(
            audit.record(AuditEntry("a", "jobs.submit")),
            audit.record(AuditEntry("a", "jobs.cancel")),
            audit.record(AuditEntry("b", "jobs.submit")),
        )
        seen = [events.queue.get_nowait() for _ in range(events.queue.qsize())]
    assert sorted((e.type, e.tenant, e.data["count"]) for e in seen) == [
        ("audit.written", "a", 2),
        ("audit.written", "b", 1),
    ]
    assert all(set(e.data) == {"count"} for e in seen)  # nothing of the entries themselves
