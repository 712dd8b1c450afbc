"""The TenantStore on SQLite, mixed into :class:`~faena.adapters.sqlite.store.SqliteStore`:
writes on its writer thread, reads on its reader thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from faena.adapters.sqlite.connection import transaction
from faena.domain.errors import Conflict
from faena.domain.tenants import Tenant

A = TypeVar("A")
T = TypeVar("T")

_TENANT_COLUMNS = "id, display_name, created_at"
INSERT_TENANT = f"INSERT OR IGNORE INTO tenants ({_TENANT_COLUMNS}) VALUES (?, ?, ?)"
GET_TENANT = f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE id = ?"
LIST_TENANTS = f"SELECT {_TENANT_COLUMNS} FROM tenants ORDER BY id"


def _tenant(r: tuple[Any, ...]) -> Tenant:
    return Tenant(id=r[0], display_name=r[1], created_at=float(r[2]))


def create_tenant(conn: sqlite3.Connection, tenant: Tenant) -> None:
    with transaction(conn):
        cur = conn.execute(INSERT_TENANT, (tenant.id, tenant.display_name, tenant.created_at))
    if cur.rowcount == 0:
        raise Conflict(f"tenant {tenant.id!r} already exists")


def select_tenants(conn: sqlite3.Connection, tenant_id: str | None) -> list[Tenant]:
    if tenant_id is None:
        return [_tenant(r) for r in conn.execute(LIST_TENANTS).fetchall()]
    return [_tenant(r) for r in conn.execute(GET_TENANT, (tenant_id,)).fetchall()]


class SqliteTenants:
    """The :class:`~faena.ports.tenants.TenantStore` operations of the SQLite store."""

    async def _write(self, op: Callable[[sqlite3.Connection, A], T], arg: A) -> T:
        raise NotImplementedError  # provided by SqliteStore

    async def _read(self, op: Callable[[sqlite3.Connection, A], T], arg: A) -> T:
        raise NotImplementedError  # provided by SqliteStore

    async def create_tenant(self, tenant: Tenant) -> None:
        await self._write(create_tenant, tenant)

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        found = await self._read(select_tenants, tenant_id)
        return found[0] if found else None

    async def list_tenants(self) -> list[Tenant]:
        return await self._read(select_tenants, None)
