"""``WS /v1/events``: the live events of the caller's tenant over a WebSocket.

Browsers cannot set headers on a WebSocket, so the API key comes as ``?token=`` or, better
(it stays out of access logs), as the first message ``{"token": "..."}`` within
``AUTH_TIMEOUT_S``. Filters: ``types`` (comma-separated event types, or prefixes ending in
``.``: ``job.``) and ``job_id``. Each event is one text message::

    {"type": "job.state", "job_id": "...", "data": {"state": "running", ...}, "ts": 1.7e9}

A refused key closes the socket with code 4401 (4403 for a missing scope) after an
``{"type": "error", "error": {...}}`` message. ``{"type": "ping"}`` is sent when nothing
happened for ``keepalive_s``. A slow reader loses the oldest events, never blocks faena.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from faena.api.auth import SCOPE_READ
from faena.domain.auth import Principal
from faena.domain.errors import FaenaError, Forbidden
from faena.domain.events import Event
from faena.ports.bus import EventBus, Subscription
from faena.services.keys import KeyService

AUTH_TIMEOUT_S = 10.0
KEEPALIVE_S = 15.0
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403


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


async def authenticate(ws: WebSocket, keys: KeyService) -> Principal | None:
    """The key's principal (``?token=`` or a first ``{"token": ...}`` message), or None after
    telling the client why and closing the socket."""
    token = ws.query_params.get("token")
    try:
        if not token:
            async with asyncio.timeout(AUTH_TIMEOUT_S):
                first = orjson.loads(await ws.receive_text())
            token = first.get("token") if isinstance(first, dict) else None
        principal = await keys.authenticate(token or None)
        if not principal.has_scope(SCOPE_READ):
            raise Forbidden(f"this API key lacks the {SCOPE_READ!r} scope")
    except (FaenaError, TimeoutError, orjson.JSONDecodeError) as e:
        if isinstance(e, FaenaError):
            error = {"code": e.code, "message": e.message}
        else:
            error = {"code": "unauthorized", "message": 'send {"token": KEY} first'}
        close = CLOSE_FORBIDDEN if isinstance(e, Forbidden) else CLOSE_UNAUTHORIZED
        with contextlib.suppress(Exception):
            await ws.send_text(orjson.dumps({"type": "error", "error": error}).decode())
            await ws.close(close)
        return None
    return principal


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
    bus: EventBus, keys: KeyService, *, keepalive_s: float = KEEPALIVE_S
) -> APIRouter:
    router = APIRouter()

    @router.websocket("/v1/events")
    async def events(ws: WebSocket) -> None:
        await ws.accept()
        principal = await authenticate(ws, keys)
        if principal is None:
            return
        wanted = type_filter(ws.query_params.get("types"))
        sub = bus.subscribe(tenant=principal.tenant, job_id=ws.query_params.get("job_id") or None)
        try:
            hello = {"type": "hello", "tenant": principal.tenant}
            await ws.send_text(orjson.dumps(hello).decode())
            await stream(ws, sub, wanted, keepalive_s)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            sub.close()

    return router


async def _drain(ws: WebSocket) -> None:
    """Read (and ignore) client messages until it disconnects, so a close is noticed."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
