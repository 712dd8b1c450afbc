"""``WS /v1/events``: the live events of the caller's tenant over a WebSocket.

Browsers cannot set headers on a WebSocket, so the API key comes as ``?token=`` or, better
(it stays out of access logs), as the first message ``{"token": "..."}`` within
``AUTH_TIMEOUT_S``. Filters: ``types`` (comma-separated event types, or prefixes ending in
``.``: ``job.``) and ``job_id``. A key sees its tenant's events, ``audit.*`` ones only with the
``audit:read`` scope (like ``GET /v1/audit``). Each event is one text message::

    {"type": "job.state", "job_id": "...", "data": {"state": "running", ...}, "ts": 1.7e9}

A refused key closes the socket with code 4401 (4403 for a missing scope) after an
``{"type": "error", "error": {...}}`` message, and is written to the audit log
(``auth.failed``, ``auth.forbidden``) like a refused HTTP call. A key presented and refused
counts toward its client address's failed-authentication limit; while that is used up, a
connection from the address is refused with code 4429 (the reason says when to retry; the
error message carries ``retry_after`` in seconds) before its key is read. An accepted
connection counts as one request of its key. ``{"type": "ping"}`` is sent when nothing
happened for ``keepalive_s``. A slow reader loses the oldest events, never blocks faena.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from faena.api.auth import SCOPE_READ
from faena.api.middleware import new_request_id
from faena.domain.audit import MAX_DETAIL_LENGTH, AuditEntry
from faena.domain.auth import Principal, visible_prefix
from faena.domain.errors import FaenaError, Forbidden, RateLimited, Unauthorized
from faena.domain.events import Event
from faena.domain.tenants import OPERATOR_TENANT
from faena.ports.bus import EventBus, Subscription
from faena.services.audit import AuditLog
from faena.services.keys import KeyService
from faena.services.ratelimit import RateLimits

log = structlog.get_logger("faena.api")

AUTH_TIMEOUT_S = 10.0
KEEPALIVE_S = 15.0
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_RATE_LIMITED = 4429
EVENTS_PATH = "/v1/events"
MAX_CLOSE_REASON = 120  # a close frame's reason holds 123 bytes
SCOPE_AUDIT = "audit:read"


def event_json(event: Event) -> bytes:
    return orjson.dumps(
        {"type": event.type, "job_id": event.job_id, "data": event.data, "ts": event.ts}
    )


def type_filter(raw: str | None) -> Any:
    wanted = [t.strip() for t in (raw or "").split(",") if t.strip()]
    if not wanted:
        return lambda _type: True
    exact = {t for t in wanted if not t.endswith(".")}
    prefixes = tuple(t for t in wanted if t.endswith("."))
    return lambda kind: kind in exact or (bool(prefixes) and kind.startswith(prefixes))


async def authenticate(
    ws: WebSocket,
    keys: KeyService,
    *,
    rate_limits: RateLimits | None = None,
    audit: AuditLog | None = None,
) -> Principal | None:
    """The key's principal (``?token=`` or a first ``{"token": ...}`` message), or None after
    telling the client why and closing the socket. ``rate_limits``: the failed-authentication
    limit of the client's address and the key's own limit, as for HTTP calls; ``audit``: where
    refusals are recorded."""
    attempt = _Attempt(_client_ip(ws, rate_limits), new_request_id(), ws.query_params.get("token"))
    try:
        if rate_limits is not None:
            await rate_limits.check_auth_failures(attempt.ip)
        if not attempt.token:
            attempt.token = await _first_message_token(ws)
        try:
            attempt.principal = await keys.authenticate(attempt.token or None)
        except Unauthorized:
            if attempt.token and rate_limits is not None:  # a refused credential, as over HTTP
                await rate_limits.auth_failed(attempt.ip)
            raise
        if not attempt.principal.has_scope(SCOPE_READ):
            raise Forbidden(f"this API key lacks the {SCOPE_READ!r} scope")
        if rate_limits is not None:
            await rate_limits.after_auth(attempt.principal, "GET", EVENTS_PATH, attempt.ip)
    except (FaenaError, TimeoutError, orjson.JSONDecodeError) as e:
        await _refuse(ws, e, attempt, audit)
        return None
    return attempt.principal


@dataclass(slots=True)
class _Attempt:
    """One connection's authentication, as far as it got."""

    ip: str
    request_id: str
    token: str | None
    principal: Principal | None = None


def _client_ip(ws: WebSocket, rate_limits: RateLimits | None) -> str:
    client = ws.scope.get("client")
    peer = client[0] if client else None
    if rate_limits is None:
        return peer or "unknown"
    forwarded = ws.headers.get("x-forwarded-for")
    return rate_limits.client_ip(peer, forwarded.encode("latin-1") if forwarded else None)


async def _first_message_token(ws: WebSocket) -> str | None:
    async with asyncio.timeout(AUTH_TIMEOUT_S):
        first = orjson.loads(await ws.receive_text())
    token = first.get("token") if isinstance(first, dict) else None
    return token if isinstance(token, str) else None


async def _refuse(ws: WebSocket, e: Exception, attempt: _Attempt, audit: AuditLog | None) -> None:
    """Tell the client why, record the refusal (a rate-limited one is not, as over HTTP) and
    close the socket with the code of the reason."""
    if isinstance(e, FaenaError):
        error: dict[str, Any] = {"code": e.code, "message": e.message}
    else:
        error = {"code": "unauthorized", "message": 'send {"token": KEY} first'}
    close, reason = CLOSE_UNAUTHORIZED, "unauthorized"
    if isinstance(e, Forbidden):
        close, reason = CLOSE_FORBIDDEN, "forbidden"
    elif isinstance(e, RateLimited):
        close, reason = CLOSE_RATE_LIMITED, e.message[:MAX_CLOSE_REASON]
        error["retry_after"] = e.retry_after_s
    if not isinstance(e, RateLimited) and audit is not None:
        await _record_refusal(audit, attempt, forbidden=close == CLOSE_FORBIDDEN, error=error)
    with contextlib.suppress(Exception):
        await ws.send_text(orjson.dumps({"type": "error", "error": error}).decode())
        await ws.close(close, reason)


async def _record_refusal(
    audit: AuditLog, attempt: _Attempt, *, forbidden: bool, error: dict[str, Any]
) -> None:
    """The refused connection in the audit log, as the audit middleware records a 401/403."""
    principal = attempt.principal
    entry = AuditEntry(
        tenant=principal.tenant if principal is not None else OPERATOR_TENANT,
        action="auth.forbidden" if forbidden else "auth.failed",
        outcome="denied",
        target=EVENTS_PATH,
        key_prefix=principal.key_prefix if principal is not None else _prefix(attempt.token),
        client_ip=attempt.ip,
        status=403 if forbidden else 401,
        request_id=attempt.request_id,
        detail=str(error.get("message"))[:MAX_DETAIL_LENGTH],
    )
    try:
        await audit.record_call(entry)
    except Exception as e:  # keep the refusal in the logs at least
        log.error(  # noqa: TRY400 -- one line with the entry, not a traceback
            "audit entry not written",
            error=str(e),
            action=entry.action,
            target=entry.target,
            client_ip=entry.client_ip,
            request_id=entry.request_id,
        )


def _prefix(token: str | None) -> str | None:
    return visible_prefix(token) if token else None


async def stream(ws: WebSocket, sub: Subscription, wanted: Any, keepalive_s: float) -> None:
    """Send matching events until the client disconnects."""
    loop = asyncio.get_running_loop()
    reader = loop.create_task(_drain(ws))
    getter: asyncio.Task[Event] | None = None
    try:
        while True:
            getter = loop.create_task(sub.get())
            done, _ = await asyncio.wait(
                {getter, reader}, timeout=keepalive_s, return_when=asyncio.FIRST_COMPLETED
            )
            if reader in done:
                break
            if getter not in done:
                getter.cancel()
                await ws.send_text('{"type":"ping"}')
                continue
            event = getter.result()
            if wanted(event.type):
                await ws.send_text(event_json(event).decode())
    except (WebSocketDisconnect, RuntimeError):
        pass  # the client went away mid-send
    finally:
        for task in (getter, reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


def events_router(
    bus: EventBus,
    keys: KeyService,
    *,
    keepalive_s: float = KEEPALIVE_S,
    rate_limits: RateLimits | None = None,
    audit: AuditLog | None = None,
) -> APIRouter:
    router = APIRouter()

    @router.websocket(EVENTS_PATH)
    async def events(ws: WebSocket) -> None:
        await ws.accept()
        principal = await authenticate(ws, keys, rate_limits=rate_limits, audit=audit)
        if principal is None:
            return
        wanted = type_filter(ws.query_params.get("types"))
        job_id = ws.query_params.get("job_id") or None
        where = None if principal.has_scope(SCOPE_AUDIT) else _not_audit
        sub = bus.subscribe(tenant=principal.tenant, job_id=job_id, where=where)
        try:
            hello = {"type": "hello", "tenant": principal.tenant}
            await ws.send_text(orjson.dumps(hello).decode())
            await stream(ws, sub, wanted, keepalive_s)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            sub.close()

    return router


def _not_audit(event: Event) -> bool:
    """The stream of a key that may not read the audit log gets no audit event."""
    return not event.type.startswith("audit.")


async def _drain(ws: WebSocket) -> None:
    """Read (and ignore) client messages until it disconnects, so a close is noticed."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
