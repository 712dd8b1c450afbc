"""Tenants: created and listed by the operator (an ``admin`` key of the ``default`` tenant)."""

from __future__ import annotations

from faena.domain.auth import Principal
from faena.domain.errors import Forbidden, NotFound, ValidationError
from faena.domain.tenants import OPERATOR_TENANT, Tenant, check_tenant_name
from faena.ports.clock import Clock
from faena.ports.tenants import TenantStore

MAX_DISPLAY_NAME = 200


def is_operator(principal: Principal) -> bool:
    """The operator: an ``admin`` key of the ``default`` tenant, the only one that may see or
    act across tenants (create tenants, create keys for another tenant)."""
    return principal.tenant == OPERATOR_TENANT and "admin" in principal.scopes


def require_operator(principal: Principal, doing: str) -> None:
    if not is_operator(principal):
        raise Forbidden(f"only an admin key of the {OPERATOR_TENANT!r} tenant may {doing}")


class TenantService:
    def __init__(self, store: TenantStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def create(
        self, principal: Principal, name: str, display_name: str | None = None
    ) -> Tenant:
        require_operator(principal, "create tenants")
        check_tenant_name(name)
        if display_name is not None and not 0 < len(display_name) <= MAX_DISPLAY_NAME:
            raise ValidationError(f"display_name has 1 to {MAX_DISPLAY_NAME} characters")
        tenant = Tenant(id=name, created_at=self.clock.now(), display_name=display_name)
        await self.store.create_tenant(tenant)
        return tenant

    async def list(self, principal: Principal) -> list[Tenant]:
        require_operator(principal, "list tenants")
        return await self.store.list_tenants()

    async def require_exists(self, tenant_id: str) -> Tenant:
        found = await self.store.get_tenant(tenant_id)
        if found is None:
            raise NotFound(f"tenant {tenant_id!r} not found; create it with 'faena tenants create'")
        return found
