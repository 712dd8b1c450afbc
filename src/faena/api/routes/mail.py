"""``/v1/mail/watches``: add, list, show and remove mailbox watches, and list what became of
their messages. The routes only translate HTTP; :mod:`faena.services.mail` decides."""

# No `from __future__ import annotations`: FastAPI reads these signatures at definition time.

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from faena.api.auth import Authenticator
from faena.api.body import read_json
from faena.api.responses import JsonResponse
from faena.api.routes.jobs import ERRORS
from faena.domain.auth import Principal
from faena.services.mail import MailService

SCOPE_WRITE = "workflows:write"
SCOPE_READ = "workflows:read"


def mail_router(service: MailService, auth: Authenticator) -> APIRouter:
    router = APIRouter(tags=["mail"], responses=ERRORS)
    Reader = Annotated[Principal, Depends(auth.require(SCOPE_READ))]
    Writer = Annotated[Principal, Depends(auth.require(SCOPE_WRITE))]

    @router.post("/v1/mail/watches", status_code=201, summary="Watch a mailbox (IMAP)")
    async def add(request: Request, principal: Writer) -> Response:
        watch = await service.add(principal.tenant, await read_json(request))
        return JsonResponse(
            watch.to_dict(),
            status_code=201,
            headers={"Location": f"/v1/mail/watches/{watch.name}"},
        )

    @router.get("/v1/mail/watches", summary="List mailbox watches")
    async def list_watches(principal: Reader) -> Response:
        found = await service.list_watches(principal.tenant)
        return JsonResponse({"watches": [w.to_dict() for w in found]})

    @router.get("/v1/mail/watches/{name}", summary="A mailbox watch and its progress")
    async def get_watch(name: str, principal: Reader) -> Response:
        return JsonResponse((await service.get(principal.tenant, name)).to_dict())

    @router.delete("/v1/mail/watches/{name}", summary="Stop watching (the mailbox is untouched)")
    async def remove(name: str, principal: Writer) -> Response:
        await service.remove(principal.tenant, name)
        return JsonResponse({"name": name, "deleted": True})

    @router.get(
        "/v1/mail/watches/{name}/messages",
        summary="What became of the watch's messages (ingested, parked, skipped)",
    )
    async def messages(
        name: str,
        principal: Reader,
        state: Annotated[str | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        found = await service.messages(principal.tenant, name, state=state, limit=limit)
        return JsonResponse({"messages": [m.to_dict() for m in found]})

    return router
