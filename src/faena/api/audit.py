"""The one place API calls are audited: a pure-ASGI middleware around the routes (and the hot
routes) that records every mutating call under ``/v1`` and ``/hooks`` with its outcome, and
every refused authentication (401) or missing scope (403) on any ``/v1`` call.

The entry is written before the response leaves (:meth:`AuditLog.record_call` returns once it
is committed, batched with the other requests' entries), so a client that got an answer can
rely on its call being in the log — unless the server runs with ``FAENA_AUDIT_DURABLE=false``.
"""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from faena.api.auth import PRINCIPAL_KEY, TENANT_KEY
from faena.api.errors import REQUEST_ID_KEY
from faena.api.middleware import CLIENT_IP_KEY
from faena.domain.audit import MAX_DETAIL_LENGTH, AuditEntry, outcome_of
from faena.domain.auth import Principal, visible_prefix
from faena.domain.tenants import OPERATOR_TENANT
from faena.services.audit import AuditLog

log = structlog.get_logger("faena.audit")

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
AUDITED_PREFIXES = ("/v1/", "/hooks/")
# Readable names for the main routes; any other route gets one derived from its path.
ACTIONS: dict[tuple[str, str], str] = {
    ("POST", "/v1/jobs"): "jobs.submit",
    ("POST", "/v1/jobs/batch"): "jobs.submit_batch",
    ("POST", "/v1/jobs/{job_id}/cancel"): "jobs.cancel",
    ("POST", "/v1/jobs/{job_id}/retry"): "jobs.retry",
    ("POST", "/v1/keys"): "keys.create",
    ("DELETE", "/v1/keys/{key_id}"): "keys.revoke",
    ("POST", "/v1/tenants"): "tenants.create",
    ("PUT", "/v1/workflows/{name}"): "workflows.apply",
    ("POST", "/v1/workflows/{name}/runs"): "workflows.run",
}
SHOWN_TOKEN_CHARS = 8
_VERBS = {"POST": "create", "PUT": "put", "PATCH": "update", "DELETE": "delete"}


def action_name(method: str, route_path: str | None, path: str) -> str:
    """``jobs.submit`` for a known route, else ``<segments>.<verb>`` (``runs.cancel.create``)."""
    if route_path is not None:
        known = ACTIONS.get((method, route_path))
        if known is not None:
            return known
    segments = [s for s in (route_path or path).split("/") if s and s != "v1"]
    named = [s for s in segments if not s.startswith("{")] or ["unknown"]
    return ".".join(named[:3]) + "." + _VERBS.get(method, method.lower())


def _header(headers: Any, name: bytes) -> str | None:
    for key, value in headers or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _token_prefix(scope: Scope) -> str | None:
    header = _header(scope.get("headers"), b"authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return visible_prefix(token) if scheme.lower() == "bearer" and token else None


def _detail(body: bytes) -> str | None:
    """The error message of an error response, for the entry's ``detail``."""
    try:
        doc = orjson.loads(body)
        message = doc["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return str(message)[:MAX_DETAIL_LENGTH]


class AuditMiddleware:
    def __init__(self, app: ASGIApp, audit: AuditLog) -> None:
        self.app = app
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(AUDITED_PREFIXES):
            await self.app(scope, receive, send)
            return
        mutating = scope["method"] in MUTATING
        held: Message | None = None  # an error response's start, sent with its body
        started = False

        async def audited_send(message: Message) -> None:
            nonlocal held, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                if status >= 400 and (mutating or status in (401, 403)):
                    held = message  # wait for the body: it holds the error message
                    return
                if mutating:
                    await self._record(scope, status, message.get("headers"), None)
            elif message["type"] == "http.response.body" and held is not None:
                start, held = held, None
                await self._record(
                    scope, start["status"], start.get("headers"), _detail(message.get("body", b""))
                )
                await send(start)
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except Exception:
            if mutating and not started:  # the request middleware answers 500
                await self._record(scope, 500, None, "internal error")
            raise

    async def _record(self, scope: Scope, status: int, headers: Any, detail: str | None) -> None:
        method, path = scope["method"], scope["path"]
        route: Any = scope.get("route")
        route_path = getattr(route, "path", None)
        principal: Principal | None = scope.get(PRINCIPAL_KEY)
        if status == 401:
            action = "auth.failed"
        elif status == 403 and method not in MUTATING:
            action = "auth.forbidden"
        else:
            action = action_name(method, route_path, path)
        entry = AuditEntry(
            tenant=principal.tenant
            if principal is not None
            else scope.get(TENANT_KEY) or OPERATOR_TENANT,
            action=action,
            outcome=outcome_of(status),
            target=path if action.startswith("auth.") else _target(scope, headers),
            key_prefix=principal.key_prefix if principal is not None else _token_prefix(scope),
            client_ip=scope.get(CLIENT_IP_KEY) or (scope.get("client") or (None,))[0],
            status=status,
            request_id=scope.get(REQUEST_ID_KEY),
            detail=detail,
        )
        try:
            await self.audit.record_call(entry)
        except Exception as e:  # the call happened: keep its entry in the logs at least
            log.error(  # noqa: TRY400 -- one line with the entry, not a traceback
                "audit entry not written",
                error=str(e),
                tenant=entry.tenant,
                action=entry.action,
                target=entry.target,
                outcome=entry.outcome,
                status=entry.status,
                key_prefix=entry.key_prefix,
                client_ip=entry.client_ip,
            )


def _target(scope: Scope, headers: Any) -> str | None:
    """The object touched: the route's path parameters, else a created object's Location."""
    params: dict[str, Any] = scope.get("path_params") or {}
    if params:
        shown = [
            # A webhook token is a credential: only its first characters go in the log.
            str(v)[:SHOWN_TOKEN_CHARS] + "…" if k == "token" else str(v)
            for k, v in params.items()
        ]
        return "/".join(shown)[:MAX_DETAIL_LENGTH]
    location = _header(headers, b"location")
    if location:
        return location.rstrip("/").rsplit("/", 1)[-1]
    return None
