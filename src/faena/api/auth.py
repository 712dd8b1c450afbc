"""Bearer API keys: every /v1 route depends on :func:`Authenticator.require` with its scope."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from fastapi import Request

from faena.domain.auth import Principal
from faena.domain.errors import Forbidden
from faena.services.keys import KeyService

SCOPE_WRITE = "jobs:write"
SCOPE_READ = "jobs:read"
SCOPE_ADMIN = "admin"


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class Authenticator:
    def __init__(self, keys: KeyService) -> None:
        self.keys = keys

    def require(self, scope: str) -> Callable[[Request], Awaitable[Principal]]:
        """A dependency returning the caller's principal; 401 without a valid key, 403 when
        the key lacks ``scope``."""

        async def principal(request: Request) -> Principal:
            found = await self.keys.authenticate(bearer_token(request))
            structlog.contextvars.bind_contextvars(tenant=found.tenant)  # in every log line
            if not found.has_scope(scope):
                raise Forbidden(f"this API key lacks the {scope!r} scope")
            return found

        return principal
