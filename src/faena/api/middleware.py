"""A pure-ASGI middleware run around every request: it names the request, applies the rate
limits it can before the app (see :mod:`faena.services.ratelimit`), refuses bodies over the
limit without reading them, and turns any unexpected exception into a logged, bare 500."""

from __future__ import annotations

import itertools
import os
import re
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from faena.api.body import DEFAULT_LIMITS, INPUT_LIMITS_KEY, InputLimits
from faena.api.errors import REQUEST_ID_KEY, error_response, rate_limit_headers
from faena.domain.auth import Principal
from faena.domain.errors import PayloadTooLarge, RateLimited, Unauthorized
from faena.services.keys import KeyService
from faena.services.ratelimit import HEALTH_PATHS, RateLimits

log = structlog.get_logger("faena.api")

REQUEST_ID_HEADER = b"x-request-id"
# Set in the scope for the authenticator: the client's address, and whether the request has
# been charged to a rate-limit bucket yet.
CLIENT_IP_KEY = "faena.client_ip"
CHARGED_KEY = "faena.rate_charged"
_SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
# Request ids need to be unique, not secret: a random per-process prefix and a counter
# (os.urandom per request cost ~6 % of a status read's CPU).
_ID_PREFIX = os.urandom(4).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body is larger than the limit of {limit} bytes")


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        rate_limits: RateLimits | None = None,
        upload_limits: dict[str, int] | None = None,
        input_limits: InputLimits = DEFAULT_LIMITS,
        *,
        keys: KeyService | None = None,
    ) -> None:
        self.app = app
        self.keys = keys  # a health request's key, for its own health limit
        self.max_body_bytes = max_body_bytes
        # Exact paths whose POST bodies have a limit of their own (artefact uploads, streamed).
        self.upload_limits = upload_limits or {}
        self.rate_limits = rate_limits
        self.input_limits = input_limits  # JSON depth and string length (faena.api.body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or new_request_id()
        scope[REQUEST_ID_KEY] = request_id
        scope[INPUT_LIMITS_KEY] = self.input_limits
        header = (REQUEST_ID_HEADER, request_id.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        limits = self.rate_limits
        charged = True
        if limits is not None:
            try:
                charged = await _admit(limits, scope, self.keys)
            except RateLimited as refused:
                await error_response(
                    429, refused.code, refused.message, request_id, rate_limit_headers(refused)
                )(scope, receive, send_with_id)
                return

        limit = self.max_body_bytes
        if self.upload_limits and scope["method"] == "POST":
            limit = self.upload_limits.get(scope["path"], limit)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await error_response(413, "payload_too_large", _too_large(limit).message, request_id)(
                scope, receive, send_with_id
            )
            return

        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)
            return message

        # Every log line of this request carries its id (and, once authenticated, its tenant).
        bound = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, counting_receive, send_with_id)
        except Exception:
            log.exception(
                "unhandled error",
                request_id=request_id,
                method=scope.get("method"),
                path=scope.get("path"),
            )
            if started:  # too late for an error body: the client sees the stream end
                return
            message = f"internal error; request id {request_id}"
            await error_response(500, "internal", message, request_id)(scope, receive, send_with_id)
        finally:
            structlog.contextvars.reset_contextvars(**bound)
            structlog.contextvars.unbind_contextvars("tenant")
            if not charged and not scope.get(CHARGED_KEY) and limits is not None:
                await limits.settle(scope[CLIENT_IP_KEY])


async def _admit(limits: RateLimits, scope: Scope, keys: KeyService | None) -> bool:
    """Find the client's address and charge what is known before the app; see
    :meth:`RateLimits.admit`."""
    client = scope.get("client")
    ip = limits.client_ip(client[0] if client else None, _header(scope, b"x-forwarded-for"))
    scope[CLIENT_IP_KEY] = ip
    authorization = _header(scope, b"authorization")
    health_key = None
    if authorization is not None and keys is not None and scope["path"] in HEALTH_PATHS:
        health_key = await _health_key(keys, authorization)
    return await limits.admit(
        scope["method"], scope["path"], ip, authorization is not None, health_key
    )


async def _health_key(keys: KeyService, authorization: bytes) -> Principal | None:
    """The valid key a health request presents (health paths need none: a refused one is
    ignored, and the request draws from its address's health bucket)."""
    scheme, _, token = authorization.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        return await keys.authenticate(token.strip())
    except Unauthorized:
        return None


def _header(scope: Scope, name: bytes) -> bytes | None:
    headers: Any = scope.get("headers", ())
    for key, value in headers:
        if key == name:
            return bytes(value)
    return None


def _incoming_request_id(scope: Scope) -> str | None:
    value = _header(scope, REQUEST_ID_HEADER)
    if value is not None and _SAFE_REQUEST_ID.fullmatch(value):
        return value.decode()
    return None


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None
