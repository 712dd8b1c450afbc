"""``/v1/tenants`` (operator only: an ``admin`` key of the ``default`` tenant) and ``/v1/audit``
(scope ``audit:read``, the caller's tenant)."""

# No `from __future__ import annotations`: FastAPI reads these signatures at definition time.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from starlette.responses import Response

from faena.api.auth import SCOPE_ADMIN, Authenticator
from faena.api.body import read_body
from faena.api.responses import JsonResponse
from faena.api.routes.jobs import ERRORS, parse_time
from faena.api.schemas import body_schema, iso
from faena.domain.audit import AuditEntry
from faena.domain.auth import Principal
from faena.domain.tenants import Tenant
from faena.ports.audit import AuditQuery
from faena.services.audit import MAX_LIST_LIMIT, AuditLog
from faena.services.tenants import TenantService

SCOPE_AUDIT = "audit:read"


class TenantIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=63, description="lowercase letters, digits, -_.")
    display_name: str | None = Field(default=None, min_length=1, max_length=200)


TENANT_IN = TypeAdapter(TenantIn)


class TenantOut(BaseModel):
    id: str
    display_name: str | None
    created_at: str


class TenantListOut(BaseModel):
    tenants: list[TenantOut]


class AuditEntryOut(BaseModel):
    id: str
    at: str
    tenant: str
    key_prefix: str | None
    client_ip: str | None
    action: str
    target: str | None
    outcome: str = Field(description="ok, denied or error")
    status: int | None
    request_id: str | None
    detail: str | None


class AuditPageOut(BaseModel):
    entries: list[AuditEntryOut]
    next_cursor: str | None


def tenant_to_json(t: Tenant) -> dict[str, Any]:
    return {"id": t.id, "display_name": t.display_name, "created_at": iso(t.created_at)}


def audit_to_json(e: AuditEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": iso(e.at),
        "tenant": e.tenant,
        "key_prefix": e.key_prefix,
        "client_ip": e.client_ip,
        "action": e.action,
        "target": e.target,
        "outcome": e.outcome,
        "status": e.status,
        "request_id": e.request_id,
        "detail": e.detail,
    }


def tenants_router(tenants: TenantService, auth: Authenticator) -> APIRouter:
    router = APIRouter(prefix="/v1/tenants", tags=["tenants"], responses=ERRORS)
    Admin = Annotated[Principal, Depends(auth.require(SCOPE_ADMIN))]

    @router.post(
        "",
        status_code=201,
        response_model=TenantOut,
        summary="Create a tenant (operator only)",
        openapi_extra=body_schema(TENANT_IN),
    )
    async def create(request: Request, principal: Admin) -> Response:
        body = await read_body(request, TENANT_IN)
        tenant = await tenants.create(principal, body.name, body.display_name)
        return JsonResponse(
            tenant_to_json(tenant), 201, headers={"Location": f"/v1/tenants/{tenant.id}"}
        )

    @router.get("", response_model=TenantListOut, summary="List tenants (operator only)")
    async def list_tenants(principal: Admin) -> Response:
        found = await tenants.list(principal)
        return JsonResponse({"tenants": [tenant_to_json(t) for t in found]})

    return router


def audit_router(audit: AuditLog, auth: Authenticator) -> APIRouter:
    router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=ERRORS)
    Auditor = Annotated[Principal, Depends(auth.require(SCOPE_AUDIT))]
    Short = Annotated[str | None, Query(max_length=200)]

    @router.get("", response_model=AuditPageOut, summary="The tenant's audit log, newest first")
    async def list_audit(
        *,
        principal: Auditor,
        action: Short = None,
        outcome: Annotated[str | None, Query(description="ok, denied or error")] = None,
        key_prefix: Short = None,
        target: Short = None,
        since: Annotated[str | None, Query(max_length=40, description="ISO 8601 or epoch")] = None,
        until: Annotated[str | None, Query(max_length=40, description="ISO 8601 or epoch")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 50,
        cursor: Short = None,
    ) -> Response:
        page = await audit.list(
            AuditQuery(
                tenant=principal.tenant,
                action=action or None,
                outcome=outcome or None,
                key_prefix=key_prefix or None,
                target=target or None,
                since=parse_time("since", since),
                until=parse_time("until", until),
                limit=limit,
                cursor=cursor or None,
            )
        )
        return JsonResponse(
            {"entries": [audit_to_json(e) for e in page.entries], "next_cursor": page.next_cursor}
        )

    return router
