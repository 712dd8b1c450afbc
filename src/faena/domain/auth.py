"""API keys and principals. Keys are stored as SHA-256 hashes; the plaintext is shown once."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from faena.domain.agents import KIND as AGENT_KIND
from faena.domain.errors import Forbidden

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
    rate_limit: int | None = None  # requests per minute for this key; None: the server default
    rate_limit_bulk: int | None = None  # bulk requests per minute; None: from rate_limit
    rate_limit_health: int | None = None  # health requests per minute presenting this key

    def is_active(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the tenant every read and write is scoped by, and the key's scopes."""

    tenant: str
    key_id: str
    key_prefix: str
    scopes: tuple[str, ...]
    rate_limit: int | None = None  # the key's own requests-per-minute limit, if it has one
    rate_limit_bulk: int | None = None  # its own bulk limit (POST /v1/jobs/batch), if any
    rate_limit_health: int | None = None  # its own health limit (/healthz, /readyz, /metrics)

    def has_scope(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def visible_prefix(plaintext: str) -> str:
    return plaintext[:VISIBLE_PREFIX_LENGTH]


SHELL_SCOPE = "jobs:shell"
# Kinds that run arbitrary code on a worker: a key needs SHELL_SCOPE (or admin) to submit them,
# and a worker must allow them too (``faena worker --allow-shell``, FAENA_ALLOW_SHELL).
CODE_RUNNING_KINDS = frozenset({"shell"})
MCP_COMMAND = "an MCP server command (stdio)"


def code_running_reason(kind: str, payload: Any) -> str | None:
    """Why a job of ``kind`` with ``payload`` runs code on its worker (None: it does not).

    ``shell`` always does; an ``agent`` does when an entry of its ``mcp`` list has a
    ``command``: that command is started as a process. ``payload`` may be a workflow step's
    template: whatever cannot be seen for certain (``mcp`` or an entry given as a template
    string) counts as running code."""
    if kind in CODE_RUNNING_KINDS:
        return f"{kind!r} jobs"
    if kind != AGENT_KIND:
        return None
    if not isinstance(payload, dict):
        return None if payload is None else f"'agent' jobs that may start {MCP_COMMAND}"
    servers = payload.get("mcp")
    if servers is None:
        return None
    if not isinstance(servers, list) or any(
        not isinstance(s, dict) or "command" in s for s in servers
    ):
        return f"'agent' jobs that start {MCP_COMMAND}"
    return None


def require_jobs_allowed(principal: Principal, jobs: Iterable[tuple[str, Any]]) -> None:
    """Forbidden, naming the scope, when one of the ``(kind, payload)`` jobs runs code (see
    :func:`code_running_reason`) and the key lacks ``jobs:shell``."""
    if principal.has_scope(SHELL_SCOPE):
        return
    for kind, payload in jobs:
        reason = code_running_reason(kind, payload)
        if reason is not None:
            raise Forbidden(f"this API key lacks the {SHELL_SCOPE!r} scope, needed for {reason}")


def require_kinds_allowed(principal: Principal, kinds: Iterable[str]) -> None:
    """Forbidden, naming the scope, when ``kinds`` hold a code-running kind the key may not use."""
    if principal.has_scope(SHELL_SCOPE):
        return
    dangerous = sorted(CODE_RUNNING_KINDS.intersection(kinds))
    if dangerous:
        raise Forbidden(
            f"this API key lacks the {SHELL_SCOPE!r} scope, needed for {dangerous[0]!r} jobs"
        )
