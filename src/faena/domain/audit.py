"""Audit entries: who did what to which object, from where, and how it ended. Append-only."""

from __future__ import annotations

from dataclasses import dataclass

OUTCOMES = ("ok", "denied", "error")
MAX_DETAIL_LENGTH = 500  # an entry records a call, it does not copy its payload


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One recorded call. ``action`` is a dotted name (``jobs.submit``, ``keys.create``,
    ``auth.failed``, ``secrets.read``); ``target`` the object it touched, when there is one.
    ``id`` and ``at`` are filled in by :class:`faena.services.audit.AuditLog` when left empty."""

    tenant: str
    action: str
    outcome: str = "ok"  # ok, denied (401/403) or error (any other refusal or failure)
    target: str | None = None
    key_prefix: str | None = None
    client_ip: str | None = None
    status: int | None = None
    request_id: str | None = None
    detail: str | None = None
    id: str = ""  # UUIDv7: sorts by time, the list cursor
    at: float = 0.0


def outcome_of(status: int) -> str:
    """The outcome an HTTP status stands for."""
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "denied"
    return "error"
