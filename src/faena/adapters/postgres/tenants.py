"""The TenantStore on PostgreSQL, mixed into :class:`~faena.adapters.postgres.store.PostgresStore`.

Tenants are operator data (only the operator lists or creates them), so these run as the
owner role, outside row-level security."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from faena.domain.errors import Conflict
from faena.domain.tenants import Tenant

_COLUMNS = "id, display_name, created_at"
INSERT_TENANT = f"""
INSERT INTO tenants ({_COLUMNS}) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING RETURNING id"""
GET_TENANT = f"SELECT {_COLUMNS} FROM tenants WHERE id = $1"
LIST_TENANTS = f"SELECT {_COLUMNS} FROM tenants ORDER BY id"


def _tenant(r: Any) -> Tenant:
    return Tenant(id=r[0], display_name=r[1], created_at=r[2])


class PostgresTenants:
    """The :class:`~faena.ports.tenants.TenantStore` operations of the PostgreSQL store."""

    if TYPE_CHECKING:

        def _connection(self, doing: str) -> AbstractAsyncContextManager[Any]: ...

    async def create_tenant(self, tenant: Tenant) -> None:
        async with self._connection("creating a tenant") as conn:
            inserted = await conn.fetchval(
                INSERT_TENANT, tenant.id, tenant.display_name, tenant.created_at
            )
        if inserted is None:
            raise Conflict(f"tenant {tenant.id!r} already exists")

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        async with self._connection("reading a tenant") as conn:
            row = await conn.fetchrow(GET_TENANT, tenant_id)
        return None if row is None else _tenant(row)

    async def list_tenants(self) -> list[Tenant]:
        async with self._connection("listing tenants") as conn:
            rows = await conn.fetch(LIST_TENANTS)
        return [_tenant(r) for r in rows]
