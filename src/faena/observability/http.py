"""A pure-ASGI middleware that counts and times requests by route template, opens a server
span per request when tracing is on, and binds the request id to the log context.

It sits outside ``RequestMiddleware`` and reads what the router left in the scope: the matched
route's template (``/v1/jobs/{job_id}``, never the raw path, so label cardinality stays
bounded) and the request id. Unmatched paths are counted as ``route="unmatched"``.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from faena.observability.metrics import Metrics
from faena.observability.tracing import Tracing

UNMATCHED = "unmatched"


def route_of(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class TelemetryMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, tracing: Tracing | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "WS") if kind == "http" else "WS"
        started = time.perf_counter()
        status = 500 if kind == "http" else 101
        elapsed: float | None = None

        async def observed_send(message: Message) -> None:
            nonlocal status, elapsed
            if message["type"] == "http.response.start":
                status = int(message["status"])
                elapsed = time.perf_counter() - started
            elif message["type"] == "websocket.close" and status == 101:
                status = 1000
            await send(message)

        span_cm = None
        if self.tracing is not None:
            headers = {
                k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())
            }
            span_cm = self.tracing.request_span(f"{method} {scope.get('path', '')}", headers)
        try:
            if span_cm is None:
                await self.app(scope, receive, observed_send)
            else:
                with span_cm as span:
                    try:
                        await self.app(scope, receive, observed_send)
                    finally:
                        route = route_of(scope)
                        span.update_name(f"{method} {route}")
                        span.set_attribute("http.request.method", method)
                        span.set_attribute("http.route", route)
                        span.set_attribute("url.path", scope.get("path", ""))
                        span.set_attribute("http.response.status_code", status)
                        request_id = scope.get("faena.request_id")
                        if request_id:
                            span.set_attribute("faena.request_id", str(request_id))
        finally:
            route = route_of(scope)
            self.metrics.record_http(
                method,
                route,
                status,
                elapsed if elapsed is not None else time.perf_counter() - started,
            )
