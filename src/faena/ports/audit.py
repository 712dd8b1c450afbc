"""The AuditStore port: append audit entries in batches, list them, purge old ones.

Append-only by design: there is no operation to change or delete one entry; only retention
(``purge_audit``) removes entries older than the retention period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from faena.domain.audit import AuditEntry


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Newest first. ``cursor`` is the id of the last entry of the previous page; ``since``
    (inclusive) and ``until`` (exclusive) bound ``at``."""

    tenant: str
    action: str | None = None
    outcome: str | None = None
    key_prefix: str | None = None
    target: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 50
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class AuditPage:
    entries: list[AuditEntry]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class PurgeAuditParams:
    """Delete up to ``limit`` entries recorded before ``before``, all tenants."""

    before: float
    limit: int = 1000


class AuditStore(Protocol):
    async def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Store ``entries`` (ids and times filled in) in one transaction."""

    async def list_audit(self, query: AuditQuery) -> AuditPage: ...

    async def purge_audit(self, params: PurgeAuditParams) -> int:
        """Delete old entries; return how many went."""
