"""The SecretVault port (sealed secrets at rest) and the SecretCipher port (the master keys).

The vault only ever sees ciphertext: sealing and opening happen in
:class:`faena.services.secrets.SecretService` through a :class:`SecretCipher`, so no adapter,
table or backup holds a value in clear.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from faena.domain.secrets import SealedSecret, SecretInfo


@dataclass(frozen=True, slots=True)
class PutSecretParams:
    """Create or replace ``name`` of ``tenant``: version 1, or the stored version + 1."""

    tenant: str
    name: str
    ciphertext: bytes
    nonce: bytes
    key_id: str
    now: float


@dataclass(frozen=True, slots=True)
class ResealParams:
    """A secret re-encrypted under a new key, applied only if the row is still at
    ``version`` (a concurrent change of value wins over the rotation)."""

    tenant: str
    name: str
    version: int
    ciphertext: bytes
    nonce: bytes
    key_id: str


@dataclass(frozen=True, slots=True)
class StaleSecretsParams:
    """Up to ``limit`` secrets of every tenant whose ``key_id`` is not ``key_id``, ordered by
    (tenant, name) after ``after`` (the last one of the previous batch)."""

    key_id: str
    limit: int = 100
    after: tuple[str, str] | None = None


class SecretVault(Protocol):
    async def put_secret(self, params: PutSecretParams) -> SecretInfo: ...

    async def get_secrets(self, tenant: str, names: Sequence[str]) -> list[SealedSecret]:
        """The sealed secrets among ``names`` that exist (missing names are left out)."""

    async def list_secrets(self, tenant: str) -> list[SecretInfo]:
        """Every secret of ``tenant`` by name, without ciphertext."""

    async def delete_secret(self, tenant: str, name: str) -> bool:
        """True when it existed."""

    async def stale_secrets(self, params: StaleSecretsParams) -> list[SealedSecret]: ...

    async def reseal_secrets(self, params: Sequence[ResealParams]) -> int:
        """Apply each re-encryption whose row is still at its version; how many applied."""


class SecretCipher(Protocol):
    """AES-256-GCM under a key ring: the current key seals, any known key opens."""

    @property
    def key_id(self) -> str:
        """Fingerprint of the current key (what new ciphertexts are tagged with)."""
        ...

    def knows(self, key_id: str) -> bool: ...

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
        """``(nonce, ciphertext)`` under the current key."""
        ...

    def open(self, key_id: str, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        """The plaintext; raises :class:`faena.domain.secrets.SecretError` when ``key_id`` is
        unknown or the ciphertext, nonce or associated data were changed."""
        ...
