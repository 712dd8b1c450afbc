"""Health, readiness, stats and the kinds served."""

# No `from __future__ import annotations`: FastAPI reads these signatures at definition time,
# and their dependencies (`Reader`, `Writer`, `Admin`) are local to the router factory.

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from faena.api.auth import SCOPE_READ, Authenticator
from faena.api.errors import request_id_of
from faena.api.responses import JsonResponse
from faena.api.schemas import KindsOut, StatsOut
from faena.domain.auth import Principal
from faena.domain.errors import Unavailable
from faena.services.orchestrator import Orchestrator

ReadyCheck = Callable[[], Awaitable[dict[str, Any]]]
log = structlog.get_logger("faena.api")


def system_router(
    orchestrator: Orchestrator, auth: Authenticator, ready: ReadyCheck | None
) -> APIRouter:
    router = APIRouter()
    Reader = Annotated[Principal, Depends(auth.require(SCOPE_READ))]

    @router.get("/healthz", tags=["health"], summary="Liveness (no auth)")
    async def healthz() -> Response:
        return JsonResponse({"status": "ok"})

    @router.get("/readyz", tags=["health"], summary="Readiness: the store answers (no auth)")
    async def readyz(request: Request) -> Response:
        if ready is None:
            return JsonResponse({"status": "ready"})
        request_id = request_id_of(request.scope)
        failing: dict[str, str] | None = None
        try:
            checks = await ready()
        except Unavailable as e:
            # NotReady (faena.observability.readiness): generic reasons for the client, what
            # exactly failed for the log. Any other Unavailable: its text stays in the log.
            failing = getattr(e, "checks", None)
            details = getattr(e, "details", None) or {}
            log.warning("not ready", request_id=request_id, error=e.message, **_prefixed(details))
            message = (
                e.message
                if failing is not None
                else f"readiness check failed; request id {request_id}"
            )
        except Exception:
            log.exception("readiness check failed", request_id=request_id)
            message = f"readiness check failed; request id {request_id}"
        else:
            return JsonResponse({"status": "ready", **checks})
        error = {"code": "unavailable", "message": message, "request_id": request_id}
        body: dict[str, Any] = {"status": "unavailable", "error": error}
        if failing is not None:
            body["checks"] = failing
        return JsonResponse(body, status_code=503)

    @router.get("/v1/stats", tags=["jobs"], response_model=StatsOut, summary="Job counts")
    async def stats(principal: Reader) -> Response:
        found = await orchestrator.stats(principal.tenant)
        return JsonResponse({"by_state": found.by_state, "by_queue": found.by_queue})

    @router.get("/v1/kinds", tags=["jobs"], response_model=KindsOut, summary="Kinds served")
    async def kinds(principal: Reader) -> Response:
        return JsonResponse({"kinds": sorted(orchestrator.catalog.kinds())})

    return router


def _prefixed(details: dict[str, str]) -> dict[str, str]:
    """Log fields for a failing check's details: ``check_store=...``."""
    return {f"check_{name}": text for name, text in details.items()}
