"""The TenantStore port: the tenants that exist. ``default`` is created by the migrations."""

from __future__ import annotations

from typing import Protocol

from faena.domain.tenants import Tenant


class TenantStore(Protocol):
    async def create_tenant(self, tenant: Tenant) -> None:
        """Store a new tenant; Conflict when one with that id exists."""

    async def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    async def list_tenants(self) -> list[Tenant]:
        """Every tenant, by id."""
