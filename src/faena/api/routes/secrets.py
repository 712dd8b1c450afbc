"""``/v1/secrets``: set, list (names only) and delete a tenant's secrets. Scope ``secrets:write``
(or ``admin``). No route ever answers with a value: a secret is only ever handed to a worker."""

# No `from __future__ import annotations`: FastAPI reads these signatures at definition time.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, TypeAdapter
from starlette.responses import Response

from faena.api.auth import Authenticator
from faena.api.body import read_body
from faena.api.responses import JsonResponse
from faena.api.routes.jobs import ERRORS
from faena.api.schemas import STRICT, body_schema
from faena.domain.auth import Principal
from faena.domain.secrets import SecretInfo, check_name
from faena.services.secrets import SecretService

SCOPE_SECRETS = "secrets:write"


class SecretIn(BaseModel):
    """The new value of a secret (a string of 1 byte to 64 KiB)."""

    model_config = STRICT

    value: str


class SecretOut(BaseModel):
    """A secret as the API shows it: never its value."""

    name: str
    version: int
    key_id: str
    created_at: float
    updated_at: float


class SecretListOut(BaseModel):
    secrets: list[SecretOut]


class DeletedOut(BaseModel):
    name: str
    deleted: bool


SECRET_IN = TypeAdapter(SecretIn)


def secret_to_json(info: SecretInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "version": info.version,
        "key_id": info.key_id,
        "created_at": info.created_at,
        "updated_at": info.updated_at,
    }


def secrets_router(secrets: SecretService, auth: Authenticator) -> APIRouter:
    router = APIRouter(prefix="/v1/secrets", tags=["secrets"], responses=ERRORS)
    Writer = Annotated[Principal, Depends(auth.require(SCOPE_SECRETS))]

    @router.put(
        "/{name}",
        response_model=SecretOut,
        summary="Create or replace a secret (the answer never holds the value)",
        openapi_extra=body_schema(SECRET_IN),
    )
    async def put(name: str, request: Request, principal: Writer) -> Response:
        check_name(name)
        body = await read_body(request, SECRET_IN)
        info = await secrets.put(principal.tenant, name, body.value, actor=principal.key_prefix)
        return JsonResponse(secret_to_json(info), 201 if info.version == 1 else 200)

    @router.get("", response_model=SecretListOut, summary="List the tenant's secrets (names)")
    async def list_secrets(principal: Writer) -> Response:
        found = await secrets.list(principal.tenant)
        return JsonResponse({"secrets": [secret_to_json(s) for s in found]})

    @router.delete("/{name}", response_model=DeletedOut, summary="Delete a secret")
    async def delete(name: str, principal: Writer) -> Response:
        await secrets.delete(principal.tenant, name, actor=principal.key_prefix)
        return JsonResponse({"name": name, "deleted": True})

    return router
