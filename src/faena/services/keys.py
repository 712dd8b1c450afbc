"""API keys: bootstrap, creation, authentication (constant-time), revocation."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from faena.domain.auth import (
    KEY_PREFIX,
    ApiKey,
    Principal,
    generate_key,
    hash_key,
    visible_prefix,
)
from faena.domain.errors import Unauthorized, ValidationError
from faena.domain.ids import new_id
from faena.domain.jobs import DEFAULT_TENANT
from faena.ports.clock import Clock
from faena.ports.store import JobStore
from faena.ports.tenants import TenantStore
from faena.services.tenants import require_operator

KNOWN_SCOPES = frozenset(
    {
        "admin",
        "jobs:write",
        "jobs:read",
        "jobs:shell",
        "workflows:write",
        "workflows:read",
        "workers",
        "secrets:write",
        "audit:read",
    }
)
CACHE_TTL_S = 5.0  # a revoked key stops working within this many seconds on every server
MIN_KEY_LENGTH = 20
MAX_RATE_LIMIT = 1_000_000


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: ApiKey
    plaintext: str  # shown once, never stored


class KeyService:
    def __init__(self, store: JobStore, clock: Clock, tenants: TenantStore | None = None) -> None:
        self.store = store
        self.clock = clock
        self.tenants = tenants  # None: any tenant name is accepted (bare stores in tests)
        self._cache: dict[str, tuple[Principal, float]] = {}

    async def bootstrap(self, given: str | None) -> CreatedKey | None:
        """Create the first admin key when there is none: ``given`` or a generated one."""
        if await self.store.count_api_keys() > 0:
            return None
        if given is not None and len(given) < MIN_KEY_LENGTH:
            raise ValidationError(
                f"FAENA_BOOTSTRAP_KEY must be at least {MIN_KEY_LENGTH} characters"
            )
        return await self.create(DEFAULT_TENANT, "bootstrap admin", ("admin",), plaintext=given)

    async def create(
        self,
        tenant: str,
        name: str,
        scopes: Sequence[str],
        *,
        expires_at: float | None = None,
        plaintext: str | None = None,
        rate_limit: int | None = None,
        rate_limit_bulk: int | None = None,
        rate_limit_health: int | None = None,
    ) -> CreatedKey:
        """A new key; ``rate_limit``, ``rate_limit_bulk``, ``rate_limit_health``: its own
        requests per minute (default bucket, bulk, health checks), None for the server's."""
        unknown = set(scopes) - KNOWN_SCOPES
        if unknown or not scopes:
            raise ValidationError(
                f"unknown scopes {sorted(unknown)}; known: {sorted(KNOWN_SCOPES)}"
                if unknown
                else "a key needs at least one scope"
            )
        now = self.clock.now()
        if expires_at is not None and expires_at <= now:
            raise ValidationError("expires_at must be in the future")
        limits = {
            "rate_limit": rate_limit,
            "rate_limit_bulk": rate_limit_bulk,
            "rate_limit_health": rate_limit_health,
        }
        for field_name, value in limits.items():
            if value is not None and not 1 <= value <= MAX_RATE_LIMIT:
                raise ValidationError(
                    f"{field_name} must be between 1 and {MAX_RATE_LIMIT} per minute"
                )
        plaintext = plaintext or generate_key()
        key = ApiKey(
            id=new_id(),
            tenant=tenant,
            name=name,
            prefix=visible_prefix(plaintext),
            key_hash=hash_key(plaintext),
            scopes=tuple(scopes),
            created_at=now,
            expires_at=expires_at,
            rate_limit=rate_limit,
            rate_limit_bulk=rate_limit_bulk,
            rate_limit_health=rate_limit_health,
        )
        await self.store.create_api_key(key)
        return CreatedKey(key=key, plaintext=plaintext)

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        now = self.clock.now()
        digest = hash_key(token)
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        for key in await self.store.find_api_keys(visible_prefix(token)):
            if hmac.compare_digest(key.key_hash, digest):
                if not key.is_active(now):
                    raise Unauthorized("API key is revoked or expired")
                principal = Principal(
                    tenant=key.tenant,
                    key_id=key.id,
                    key_prefix=key.prefix,
                    scopes=key.scopes,
                    rate_limit=key.rate_limit,
                    rate_limit_bulk=key.rate_limit_bulk,
                    rate_limit_health=key.rate_limit_health,
                )
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (principal, now + CACHE_TTL_S)
                return principal
        hint = "" if token.startswith(KEY_PREFIX) else " (faena keys start with 'fk_')"
        raise Unauthorized("invalid API key" + hint)

    async def create_for(
        self,
        principal: Principal,
        tenant: str | None,
        name: str,
        scopes: Sequence[str],
        *,
        expires_at: float | None = None,
        rate_limit: int | None = None,
        rate_limit_bulk: int | None = None,
        rate_limit_health: int | None = None,
    ) -> CreatedKey:
        """A key created through the API or CLI: for the caller's own tenant, or — by the
        operator only — for another tenant, which must exist."""
        target = tenant or principal.tenant
        if target != principal.tenant:
            require_operator(principal, "create keys for another tenant")
        if self.tenants is not None and await self.tenants.get_tenant(target) is None:
            raise ValidationError(
                f"tenant {target!r} does not exist; create it first with 'faena tenants create'"
            )
        return await self.create(
            target,
            name,
            scopes,
            expires_at=expires_at,
            rate_limit=rate_limit,
            rate_limit_bulk=rate_limit_bulk,
            rate_limit_health=rate_limit_health,
        )

    async def list(self, tenant: str) -> list[ApiKey]:
        return await self.store.list_api_keys(tenant)

    async def revoke(self, tenant: str, key_id: str) -> ApiKey:
        key = await self.store.revoke_api_key(tenant, key_id, self.clock.now())
        self._cache = {d: v for d, v in self._cache.items() if v[0].key_id != key_id}
        return key
