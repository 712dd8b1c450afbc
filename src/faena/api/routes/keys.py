"""``/v1/keys``: create (the plaintext is in the answer, once), list, revoke. Scope ``admin``."""

# No `from __future__ import annotations`: FastAPI reads these signatures at definition time,
# and their dependencies (`Reader`, `Writer`, `Admin`) are local to the router factory.

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from faena.api.auth import SCOPE_ADMIN, Authenticator
from faena.api.body import read_body
from faena.api.responses import JsonResponse
from faena.api.routes.jobs import ERRORS
from faena.api.schemas import KEY_IN, CreatedKeyOut, KeyListOut, KeyOut, body_schema, key_to_json
from faena.domain.auth import Principal
from faena.services.keys import KeyService


def keys_router(keys: KeyService, auth: Authenticator) -> APIRouter:
    router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=ERRORS)
    Admin = Annotated[Principal, Depends(auth.require(SCOPE_ADMIN))]

    @router.post(
        "",
        status_code=201,
        response_model=CreatedKeyOut,
        summary="Create an API key",
        openapi_extra=body_schema(KEY_IN),
    )
    async def create(request: Request, principal: Admin) -> Response:
        key_in = await read_body(request, KEY_IN)
        created = await keys.create_for(
            principal,
            key_in.tenant,
            key_in.name,
            key_in.scopes,
            expires_at=key_in.expires_at,
            rate_limit=key_in.rate_limit,
            rate_limit_bulk=key_in.rate_limit_bulk,
            rate_limit_health=key_in.rate_limit_health,
        )
        return JsonResponse({**key_to_json(created.key), "key": created.plaintext}, 201)

    @router.get("", response_model=KeyListOut, summary="List the tenant's API keys")
    async def list_keys(principal: Admin) -> Response:
        found = await keys.list(principal.tenant)
        return JsonResponse({"keys": [key_to_json(k) for k in found]})

    @router.delete("/{key_id}", response_model=KeyOut, summary="Revoke an API key")
    async def revoke(key_id: str, principal: Admin) -> Response:
        return JsonResponse(key_to_json(await keys.revoke(principal.tenant, key_id)))

    return router
