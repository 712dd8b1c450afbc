"""Bearer API keys: every /v1 route depends on :func:`Authenticator.require` with its scope."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from fastapi import Request

from faena.api.middleware import CHARGED_KEY, CLIENT_IP_KEY
from faena.domain.auth import Principal
from faena.domain.errors import Forbidden, Unauthorized
from faena.services.keys import KeyService
from faena.services.ratelimit import RateLimits

SCOPE_WRITE = "jobs:write"
SCOPE_READ = "jobs:read"
SCOPE_ADMIN = "admin"
SCOPE_SHELL = "jobs:shell"
PRINCIPAL_KEY = "faena.principal"  # the caller, in the ASGI scope (read by faena.api.audit)
TENANT_KEY = "faena.tenant"  # the tenant of a call made without a key (a webhook), if known


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class Authenticator:
    def __init__(self, keys: KeyService, rate_limits: RateLimits | None = None) -> None:
        self.keys = keys
        self.rate_limits = rate_limits

    async def authenticate(self, request: Request, scope: str) -> Principal:
        """The caller's principal; 401 without a valid key, 403 when the key lacks ``scope``.
        Every authenticated route comes here: the FastAPI dependency and the hot routes."""
        limits = self.rate_limits
        asgi_scope = request.scope
        ip = asgi_scope.get(CLIENT_IP_KEY)
        if limits is None or ip is None or asgi_scope.get(CHARGED_KEY):
            found = await self.keys.authenticate(bearer_token(request))
        else:  # the per-key and per-address buckets (faena.services.ratelimit)
            asgi_scope[CHARGED_KEY] = True
            token = bearer_token(request)
            try:
                found = await self.keys.authenticate(token)
            except Unauthorized:
                if request.headers.get("authorization") is not None:  # a refused credential
                    await limits.auth_failed(ip)
                raise
            await limits.after_auth(found, asgi_scope["method"], asgi_scope["path"], ip)
        asgi_scope[PRINCIPAL_KEY] = found  # for the audit middleware (faena.api.audit)
        structlog.contextvars.bind_contextvars(tenant=found.tenant)  # in every log line
        if not found.has_scope(scope):
            raise Forbidden(f"this API key lacks the {scope!r} scope")
        return found

    def require(self, scope: str) -> Callable[[Request], Awaitable[Principal]]:
        """A dependency calling :meth:`authenticate` with ``scope``."""

        async def principal(request: Request) -> Principal:
            return await self.authenticate(request, scope)

        return principal
