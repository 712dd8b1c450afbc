"""The FastAPI application factory. It only wires routes to the services it is given; the
composition root decides which store, bus and clock those services use."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI

from faena.api.auth import Authenticator
from faena.api.body import DEFAULT_LIMITS, InputLimits
from faena.api.errors import install_error_handlers
from faena.api.hot import HotRoutes
from faena.api.middleware import RequestMiddleware
from faena.api.responses import JsonResponse
from faena.api.routes.jobs import jobs_router
from faena.api.routes.keys import keys_router
from faena.api.routes.llm import include_llm
from faena.api.routes.system import system_router
from faena.api.schemas import OPENAPI_COMPONENTS
from faena.services.keys import KeyService
from faena.services.orchestrator import Orchestrator
from faena.services.ratelimit import RateLimits

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
SSE_KEEPALIVE_S = 15.0


def create_app(
    orchestrator: Orchestrator,
    keys: KeyService,
    *,
    ready: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    sse_keepalive_s: float = SSE_KEEPALIVE_S,
    automation: Any | None = None,
    workers: Any | None = None,
    telemetry: Any | None = None,
    ui: bool = True,
    rate_limits: RateLimits | None = None,
    input_limits: InputLimits = DEFAULT_LIMITS,
    artefacts: Any | None = None,
    mail: Any | None = None,
    tenants: Any | None = None,
    audit: Any | None = None,
    secrets: Any | None = None,
    llm: Any | None = None,
    ask: Any | None = None,
) -> FastAPI:
    from faena import __version__

    app = FastAPI(
        title="faena",
        version=__version__,
        summary="Durable jobs: submit, follow, cancel, retry.",
        default_response_class=JsonResponse,
        **_without_native_telemetry(),
    )
    # rate_limits (issue 6): None: no limits (the composition root always gives them).
    auth = Authenticator(keys, rate_limits)
    app.include_router(system_router(orchestrator, auth, ready))
    app.include_router(jobs_router(orchestrator, auth, sse_keepalive_s=sse_keepalive_s))
    app.include_router(keys_router(keys, auth))
    if automation is not None:  # faena.services.automation.Automation (workflows, webhooks)
        from faena.api.routes.hooks import hooks_router
        from faena.api.routes.workflows import workflows_router

        app.include_router(workflows_router(automation.workflows, auth, orchestrator))
        app.include_router(hooks_router(automation.hooks, automation.webhooks, auth))
    if workers is not None:  # faena.bootstrap_workers.WorkerPlane (issue 4)
        from faena.api.routes.workers import workers_router

        app.include_router(workers_router(workers.registry, workers.tokens, auth))
    upload_limits = _mount_artefacts(app, artefacts, auth)  # issue 9
    if mail is not None:  # faena.services.mail.MailService: mailbox watches (issue 9)
        from faena.api.routes.mail import mail_router

        app.include_router(mail_router(mail, auth))
    if tenants is not None:  # faena.services.tenants.TenantService (issue 6)
        from faena.api.routes.tenants import tenants_router

        app.include_router(tenants_router(tenants, auth))
    if audit is not None:  # faena.services.audit.AuditLog (issue 6)
        from faena.api.routes.tenants import audit_router

        app.include_router(audit_router(audit, auth))
    if secrets is not None:  # faena.services.secrets.SecretService (issue 6)
        from faena.api.routes.secrets import secrets_router

        app.include_router(secrets_router(secrets, auth))
    include_llm(app, llm, auth)  # faena.services.llm.LlmService (issue 8), when given
    if ask is not None:  # faena.services.ask.AskService (issue 8): /v1/ask
        from faena.api.routes.ask import ask_router

        app.include_router(ask_router(ask, auth))
    from faena.api.routes.events import events_router

    app.include_router(events_router(orchestrator.bus, keys, rate_limits=rate_limits, audit=audit))
    if telemetry is not None and telemetry.metrics_on:  # faena.observability (issue 7)
        from faena.observability.routes import metrics_router

        app.include_router(metrics_router(telemetry.metrics))
    if ui:  # the dashboard (issue 7): static pages, a client of this API
        from faena.ui.routes import mount_ui

        mount_ui(app)
    install_error_handlers(app)
    # Innermost of faena's middlewares: every other one sees the hot routes' requests too.
    app.add_middleware(HotRoutes, orchestrator=orchestrator, auth=auth)
    if audit is not None:  # just outside the hot routes: every call under /v1 and /hooks
        from faena.api.audit import AuditMiddleware

        app.add_middleware(AuditMiddleware, audit=audit)
    app.add_middleware(
        RequestMiddleware,
        max_body_bytes=max_body_bytes,
        rate_limits=rate_limits,
        input_limits=input_limits,
        upload_limits=upload_limits,
        keys=keys,
    )
    if telemetry is not None and telemetry.enabled:  # outermost: sees the route and status
        from faena.observability.http import TelemetryMiddleware

        app.add_middleware(
            TelemetryMiddleware, metrics=telemetry.metrics, tracing=telemetry.tracing
        )
    _publish_input_schemas(app)
    return app


def _without_native_telemetry() -> dict[str, Any]:
    """FastAPI's own OpenTelemetry instrumentation (0.16x) is switched off: faena traces and
    measures its requests itself (faena.observability.http), and FastAPI's would add a second
    span per request, and check the OpenTelemetry providers on every request (about a tenth
    of a submit's CPU when measured)."""
    import inspect

    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def _mount_artefacts(app: FastAPI, artefacts: Any | None, auth: Authenticator) -> dict[str, int]:
    """``/v1/artefacts`` when there is an ArtefactService; its upload limit for the middleware
    (uploads are streamed, so they may exceed the general body limit)."""
    if artefacts is None:
        return {}
    from faena.api.routes.artefacts import ARTEFACTS_PATH, artefacts_router

    app.include_router(artefacts_router(artefacts, auth))
    return {ARTEFACTS_PATH: artefacts.max_bytes}


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
