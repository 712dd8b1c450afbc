"""The TenantStore in memory, mixed into :class:`~faena.adapters.memory.store.MemoryStore`."""

from __future__ import annotations

from faena.domain.errors import Conflict
from faena.domain.tenants import OPERATOR_TENANT, Tenant


class MemoryTenants:
    """The :class:`~faena.ports.tenants.TenantStore` operations of the in-memory store."""

    def _tenants(self) -> dict[str, Tenant]:
        state: dict[str, Tenant] | None = self.__dict__.get("_tenant_rows")
        if state is None:  # as the SQL migrations do: the operator's tenant always exists
            state = self.__dict__["_tenant_rows"] = {
                OPERATOR_TENANT: Tenant(OPERATOR_TENANT, 0.0, OPERATOR_TENANT)
            }
        return state

    async def create_tenant(self, tenant: Tenant) -> None:
        tenants = self._tenants()
        if tenant.id in tenants:
            raise Conflict(f"tenant {tenant.id!r} already exists")
        tenants[tenant.id] = tenant

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        return self._tenants().get(tenant_id)

    async def list_tenants(self) -> list[Tenant]:
        return [t for _, t in sorted(self._tenants().items())]
