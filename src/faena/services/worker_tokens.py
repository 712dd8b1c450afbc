"""Worker tokens: created by an admin, exchanged by a worker for a short-lived credential."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from faena.domain.errors import Forbidden, Unauthorized, ValidationError
from faena.domain.ids import new_id
from faena.domain.tenants import OPERATOR_TENANT
from faena.domain.worker_auth import (
    CREDENTIAL_TTL_S,
    Credential,
    credential_token_id,
    generate_token,
    hash_token,
    sign_credential,
    token_prefix,
    verify_credential,
)
from faena.domain.workers import WORKER_TOKEN_PREFIX, WorkerToken
from faena.ports.clock import Clock
from faena.ports.workers import WorkerStore

REFUSED = "worker token refused: unknown or revoked; create one with 'faena workers token create'"
SHARED_REFUSED = (
    "only the operator (an admin key of the 'default' tenant) can create a shared worker token"
)


@dataclass(frozen=True, slots=True)
class CreatedToken:
    token: WorkerToken
    plaintext: str


class WorkerTokens:
    def __init__(
        self, store: WorkerStore, clock: Clock, *, ttl_s: float = CREDENTIAL_TTL_S
    ) -> None:
        self._store = store
        self._clock = clock
        self.ttl_s = ttl_s
        self._on_revoke: list[Callable[[str], None]] = []

    def on_revoke(self, hook: Callable[[str], None]) -> None:
        """Call ``hook(token_id)`` when a token is revoked through this server."""
        self._on_revoke.append(hook)

    async def create(self, tenant: str, name: str, *, shared: bool = False) -> CreatedToken:
        """A token whose workers run ``tenant``'s jobs only; ``shared``: every tenant's, which
        only the operator's tenant may create (the API also requires its admin scope)."""
        name = name.strip()
        if not name or len(name) > 200:
            raise ValidationError("a worker token needs a name of 1 to 200 characters")
        if shared and tenant != OPERATOR_TENANT:
            raise Forbidden(SHARED_REFUSED)
        plaintext = generate_token()
        token = WorkerToken(
            id=new_id(),
            tenant=tenant,
            name=name,
            prefix=token_prefix(plaintext),
            token_hash=hash_token(plaintext),
            created_at=self._clock.now(),
            shared=shared,
        )
        await self._store.create_worker_token(token)
        return CreatedToken(token, plaintext)

    async def list(self, tenant: str) -> list[WorkerToken]:
        return await self._store.list_worker_tokens(tenant)

    async def revoke(self, tenant: str, token_id: str) -> WorkerToken:
        token = await self._store.revoke_worker_token(tenant, token_id, self._clock.now())
        for hook in self._on_revoke:
            hook(token.id)
        return token

    async def exchange(self, plaintext: str) -> Credential:
        """A fresh credential for a valid token; Unauthorized otherwise."""
        token = await self._find(plaintext)
        return sign_credential(token.id, token.token_hash, self._clock.now(), self.ttl_s)

    async def renew(self, token_id: str) -> Credential:
        token = await self.active(token_id)
        return sign_credential(token.id, token.token_hash, self._clock.now(), self.ttl_s)

    async def verify(self, credential: str) -> WorkerToken:
        """The token a credential was issued for, if the credential is valid and the token
        still active; Unauthorized otherwise."""
        token = await self.active(credential_token_id(credential))
        verify_credential(credential, token.token_hash, self._clock.now())
        return token

    async def active(self, token_id: str) -> WorkerToken:
        token = await self._store.get_worker_token(token_id)
        if token is None or not token.is_active:
            raise Unauthorized(REFUSED)
        return token

    async def _find(self, plaintext: str) -> WorkerToken:
        if not plaintext.startswith(WORKER_TOKEN_PREFIX):
            raise Unauthorized(REFUSED)
        wanted = hash_token(plaintext)
        for token in await self._store.find_worker_tokens(token_prefix(plaintext)):
            if hmac.compare_digest(token.token_hash, wanted) and token.is_active:
                return token
        raise Unauthorized(REFUSED)
