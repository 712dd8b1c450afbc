"""``/v1/artefacts``: upload (raw body), metadata, download, list, delete. Scopes ``jobs:write``
to upload and delete, ``jobs:read`` to read; another tenant's artefact is a 404.

An upload is the request body itself (``Content-Type`` is the artefact's, ``?name=`` its file
name), streamed to the blob store as it arrives: a 100 MB file is never held in memory. The
request-size middleware lets this route through up to the artefact limit instead of the
API's general one.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at definition time,
# and their dependencies (`Reader`, `Writer`) are local to the router factory.

from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response, StreamingResponse

from faena.api.auth import SCOPE_READ, SCOPE_WRITE, Authenticator
from faena.api.responses import JsonResponse
from faena.api.routes.jobs import ERRORS
from faena.domain.artefacts import Artefact, is_artefact_id
from faena.domain.auth import Principal
from faena.domain.errors import ValidationError
from faena.services.artefacts import MAX_PAGE, ArtefactService

ARTEFACTS_PATH = "/v1/artefacts"


def artefacts_router(artefacts: ArtefactService, auth: Authenticator) -> APIRouter:
    router = APIRouter(prefix=ARTEFACTS_PATH, tags=["artefacts"], responses=ERRORS)
    Reader = Annotated[Principal, Depends(auth.require(SCOPE_READ))]
    Writer = Annotated[Principal, Depends(auth.require(SCOPE_WRITE))]

    @router.post(
        "",
        status_code=201,
        summary="Upload an artefact (the raw request body)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    async def upload(
        request: Request,
        principal: Writer,
        name: Annotated[str | None, Query(max_length=1024)] = None,
        job_id: Annotated[str | None, Query(max_length=64)] = None,
    ) -> Response:
        if job_id is not None and not is_artefact_id(job_id):
            raise ValidationError("job_id is not a job id")
        declared = request.headers.get("content-length")
        size = int(declared) if declared is not None and declared.isdigit() else None
        created = await artefacts.put_stream(
            principal.tenant,
            name or "",
            request.headers.get("content-type", ""),
            _body(request),
            job_id=job_id,
            declared_size=size,
        )
        return JsonResponse(
            _to_json(created), 201, headers={"Location": f"{ARTEFACTS_PATH}/{created.id}"}
        )

    @router.get("", summary="List the tenant's artefacts, newest first")
    async def list_artefacts(
        principal: Reader,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        cursor: Annotated[str | None, Query(max_length=64)] = None,
        job_id: Annotated[str | None, Query(max_length=64)] = None,
    ) -> Response:
        page = await artefacts.list(
            principal.tenant, limit=limit, cursor=cursor or None, job_id=job_id or None
        )
        return JsonResponse(
            {"artefacts": [_to_json(a) for a in page.artefacts], "next_cursor": page.next_cursor}
        )

    @router.get("/{artefact_id}", summary="An artefact's metadata")
    async def info(artefact_id: str, principal: Reader) -> Response:
        return JsonResponse(_to_json(await artefacts.info(principal.tenant, artefact_id)))

    @router.get(
        "/{artefact_id}/content",
        summary="Download an artefact",
        response_class=StreamingResponse,
        responses={200: {"content": {"application/octet-stream": {}}}},
    )
    async def content(artefact_id: str, principal: Reader) -> Response:
        found, chunks = await artefacts.open(principal.tenant, artefact_id)
        return StreamingResponse(chunks, media_type=found.content_type, headers=_download(found))

    @router.delete("/{artefact_id}", status_code=204, summary="Delete an artefact")
    async def delete(artefact_id: str, principal: Writer) -> Response:
        await artefacts.delete(principal.tenant, artefact_id)
        return Response(status_code=204)

    return router


async def _body(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:  # nothing is stored; the client is gone, so no one hears of it
        raise ValidationError("the upload was interrupted before its end") from None


def _to_json(a: Artefact) -> dict[str, Any]:
    return a.to_dict()


def _download(a: Artefact) -> dict[str, str]:
    """Always a download, never rendered on faena's origin (the dashboard lives there)."""
    return {
        "Content-Length": str(a.size),
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(a.name, safe='')}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
        "ETag": f'"{a.sha256}"',
    }
