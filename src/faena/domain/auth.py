"""API keys and principals. Keys are stored as SHA-256 hashes; the plaintext is shown once."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

KEY_PREFIX = "fk_"
VISIBLE_PREFIX_LENGTH = 11  # "fk_" plus 8 characters, enough to tell keys apart in a list


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    tenant: str
    name: str
    prefix: str
    key_hash: str
    scopes: tuple[str, ...]
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None

    def is_active(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the tenant every read and write is scoped by, and the key's scopes."""

    tenant: str
    key_id: str
    key_prefix: str
    scopes: tuple[str, ...]

    def has_scope(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def visible_prefix(plaintext: str) -> str:
    return plaintext[:VISIBLE_PREFIX_LENGTH]
