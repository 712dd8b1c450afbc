"""The FastAPI application factory. It only wires routes to the services it is given; the
composition root decides which store, bus and clock those services use."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI

from faena.api.auth import Authenticator
from faena.api.errors import install_error_handlers
from faena.api.middleware import RequestMiddleware
from faena.api.responses import JsonResponse
from faena.api.routes.jobs import jobs_router
from faena.api.routes.keys import keys_router
from faena.api.routes.system import system_router
from faena.api.schemas import OPENAPI_COMPONENTS
from faena.services.keys import KeyService
from faena.services.orchestrator import Orchestrator

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
SSE_KEEPALIVE_S = 15.0


def create_app(
    orchestrator: Orchestrator,
    keys: KeyService,
    *,
    ready: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    sse_keepalive_s: float = SSE_KEEPALIVE_S,
) -> FastAPI:
    from faena import __version__

    app = FastAPI(
        title="faena",
        version=__version__,
        summary="Durable jobs: submit, follow, cancel, retry.",
        default_response_class=JsonResponse,
    )
    auth = Authenticator(keys)
    app.include_router(system_router(orchestrator, auth, ready))
    app.include_router(jobs_router(orchestrator, auth, sse_keepalive_s=sse_keepalive_s))
    app.include_router(keys_router(keys, auth))
    install_error_handlers(app)
    app.add_middleware(RequestMiddleware, max_body_bytes=max_body_bytes)
    _publish_input_schemas(app)
    return app


def _publish_input_schemas(app: FastAPI) -> None:
    """Add the request-body models the routes refer to (they validate bodies themselves)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in OPENAPI_COMPONENTS.items():
                schemas.setdefault(name, definition)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
