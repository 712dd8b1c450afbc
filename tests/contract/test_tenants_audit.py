"""Tenants and the audit log on every store: the default tenant exists, names are unique,
audit entries are appended (idempotently), listed per tenant newest first with filters and a
cursor, and purged by age."""

from __future__ import annotations

from typing import Any

import pytest

from faena.domain.audit import AuditEntry
from faena.domain.errors import Conflict
from faena.domain.ids import new_ids
from faena.domain.tenants import Tenant
from faena.ports.audit import AuditQuery, PurgeAuditParams


async def test_the_default_tenant_always_exists(store: Any) -> None:
    found = await store.get_tenant("default")
    assert found is not None and found.id == "default"


async def test_a_tenant_is_created_once(store: Any) -> None:
    await store.create_tenant(Tenant("acme", 1.0, "Acme Ltd"))
    with pytest.raises(Conflict):
        await store.create_tenant(Tenant("acme", 2.0))
    assert await store.get_tenant("acme") == Tenant("acme", 1.0, "Acme Ltd")
    assert [t.id for t in await store.list_tenants()] == ["acme", "default"]


def _entries(n: int, tenant: str = "a", **fields: Any) -> list[AuditEntry]:
    return [
        AuditEntry(tenant=tenant, action="jobs.submit", id=i, at=100.0 + k, **fields)
        for k, i in enumerate(new_ids(n))
    ]


async def test_audit_entries_are_listed_newest_first_per_tenant(store: Any) -> None:
    mine, theirs = _entries(3), _entries(2, tenant="b")
    await store.append_audit(mine + theirs)
    page = await store.list_audit(AuditQuery(tenant="a"))
    assert [e.id for e in page.entries] == [e.id for e in reversed(mine)]
    assert page.entries[0] == mine[-1]
    assert page.next_cursor is None


async def test_appending_the_same_entry_twice_keeps_one(store: Any) -> None:
    entries = _entries(2)
    await store.append_audit(entries)
    await store.append_audit(entries)  # a retried batch
    assert len((await store.list_audit(AuditQuery(tenant="a"))).entries) == 2


async def test_audit_pages_follow_the_cursor(store: Any) -> None:
    entries = _entries(5)
    await store.append_audit(entries)
    first = await store.list_audit(AuditQuery(tenant="a", limit=2))
    second = await store.list_audit(AuditQuery(tenant="a", limit=2, cursor=first.next_cursor))
    third = await store.list_audit(AuditQuery(tenant="a", limit=2, cursor=second.next_cursor))
    seen = [e.id for p in (first, second, third) for e in p.entries]
    assert seen == [e.id for e in reversed(entries)]
    assert third.next_cursor is None


async def test_audit_filters_combine(store: Any) -> None:
    [ok] = _entries(1, outcome="ok", key_prefix="fk_aaaaaaaa", target="j1")
    [denied] = _entries(1, outcome="denied", key_prefix="fk_bbbbbbbb", target="j2")
    [other] = [AuditEntry(tenant="a", action="keys.create", id=new_ids(1)[0], at=200.0)]
    await store.append_audit([ok, denied, other])

    async def ids(**filters: Any) -> list[str]:
        return [e.id for e in (await store.list_audit(AuditQuery(tenant="a", **filters))).entries]

    assert await ids(outcome="denied") == [denied.id]
    assert await ids(key_prefix="fk_aaaaaaaa") == [ok.id]
    assert await ids(target="j2") == [denied.id]
    assert await ids(action="keys.create") == [other.id]
    assert await ids(since=150.0) == [other.id]
    assert await ids(until=150.0) == [denied.id, ok.id]
    assert await ids(action="jobs.submit", outcome="ok") == [ok.id]


async def test_old_audit_entries_are_purged_in_batches(store: Any) -> None:
    entries = _entries(5)  # at 100 … 104
    await store.append_audit(entries)
    assert await store.purge_audit(PurgeAuditParams(before=103.0, limit=2)) == 2
    assert await store.purge_audit(PurgeAuditParams(before=103.0, limit=2)) == 1
    assert await store.purge_audit(PurgeAuditParams(before=103.0, limit=2)) == 0
    left = (await store.list_audit(AuditQuery(tenant="a"))).entries
    assert [e.at for e in left] == [104.0, 103.0]
