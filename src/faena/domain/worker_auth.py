"""Worker tokens and the short-lived credentials they are exchanged for. Pure functions.

A worker presents its token once per connection; the server answers with a credential
``wc1.<token id>.<expires at>.<signature>`` signed with HMAC-SHA256. The signing key is derived
from the token's stored hash, so every server sharing the store can check a credential, and a
revoked token's credentials stop working as soon as a server sees the revocation.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from faena.domain.errors import Unauthorized
from faena.domain.workers import VISIBLE_TOKEN_PREFIX_LENGTH, WORKER_TOKEN_PREFIX

CREDENTIAL_VERSION = "wc1"
CREDENTIAL_TTL_S = 15 * 60.0


def generate_token() -> str:
    return WORKER_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def token_prefix(plaintext: str) -> str:
    return plaintext[:VISIBLE_TOKEN_PREFIX_LENGTH]


@dataclass(frozen=True, slots=True)
class Credential:
    token_id: str
    expires_at: float
    text: str


def _signature(token_hash: str, token_id: str, expires_at: str) -> str:
    key = hashlib.sha256(b"faena.worker-credential:" + token_hash.encode()).digest()
    message = f"{CREDENTIAL_VERSION}.{token_id}.{expires_at}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign_credential(token_id: str, token_hash: str, now: float, ttl_s: float) -> Credential:
    expires = f"{now + ttl_s:.0f}"
    sig = _signature(token_hash, token_id, expires)
    return Credential(token_id, float(expires), f"{CREDENTIAL_VERSION}.{token_id}.{expires}.{sig}")


def credential_token_id(text: str) -> str:
    """The token id a credential claims to be signed for (check it with :func:`verify`)."""
    parts = text.split(".")
    if len(parts) != 4 or parts[0] != CREDENTIAL_VERSION or not parts[1]:
        raise Unauthorized("malformed worker credential")
    return parts[1]


def verify_credential(text: str, token_hash: str, now: float) -> Credential:
    """The credential if its signature is right and it has not expired; Unauthorized if not."""
    parts = text.split(".")
    if len(parts) != 4 or parts[0] != CREDENTIAL_VERSION:
        raise Unauthorized("malformed worker credential")
    _, token_id, expires, sig = parts
    if not hmac.compare_digest(sig, _signature(token_hash, token_id, expires)):
        raise Unauthorized("worker credential has a bad signature")
    try:
        expires_at = float(expires)
    except ValueError:
        raise Unauthorized("malformed worker credential") from None
    if expires_at <= now:
        raise Unauthorized("worker credential expired; reconnect with the token")
    return Credential(token_id, expires_at, text)
