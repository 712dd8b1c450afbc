"""The AuditStore on SQLite, mixed into :class:`~faena.adapters.sqlite.store.SqliteStore`. A
batch of entries is one ``executemany`` in one ``BEGIN IMMEDIATE`` transaction on the writer
thread; lists run on the reader thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from faena.adapters.sqlite.connection import transaction
from faena.domain.audit import AuditEntry
from faena.ports.audit import AuditPage, AuditQuery, PurgeAuditParams

A = TypeVar("A")
T = TypeVar("T")

AUDIT_COLUMNS = (
    "id, at, tenant, key_prefix, client_ip, action, target, outcome, status, request_id, detail"
)
INSERT_AUDIT = f"INSERT OR IGNORE INTO audit_log ({AUDIT_COLUMNS}) VALUES ({', '.join('?' * 11)})"
PURGE_AUDIT = """
DELETE FROM audit_log WHERE id IN (
    SELECT id FROM audit_log WHERE at < ? ORDER BY at LIMIT ?)"""
# Optional filters, in this order, each appended when the query has it.
_AUDIT_FILTERS = (
    ("action", "action = :action"),
    ("outcome", "outcome = :outcome"),
    ("key_prefix", "key_prefix = :key_prefix"),
    ("target", "target = :target"),
    ("since", "at >= :since"),
    ("until", "at < :until"),
    ("cursor", "id < :cursor"),
)


def audit_row(e: AuditEntry) -> tuple[Any, ...]:
    return (
        e.id,
        e.at,
        e.tenant,
        e.key_prefix,
        e.client_ip,
        e.action,
        e.target,
        e.outcome,
        e.status,
        e.request_id,
        e.detail,
    )


def audit_entry(r: Sequence[Any]) -> AuditEntry:
    return AuditEntry(
        id=r[0],
        at=float(r[1]),
        tenant=r[2],
        key_prefix=r[3],
        client_ip=r[4],
        action=r[5],
        target=r[6],
        outcome=r[7],
        status=r[8],
        request_id=r[9],
        detail=r[10],
    )


def append_audit(conn: sqlite3.Connection, entries: Sequence[AuditEntry]) -> None:
    with transaction(conn):
        conn.executemany(INSERT_AUDIT, [audit_row(e) for e in entries])


def list_audit(conn: sqlite3.Connection, query: AuditQuery) -> AuditPage:
    bind: dict[str, Any] = {"tenant": query.tenant, "limit": query.limit + 1}
    where = ["tenant = :tenant"]
    for name, condition in _AUDIT_FILTERS:
        value = getattr(query, name)
        if value is not None:
            bind[name] = value
            where.append(condition)
    sql = (
        f"SELECT {AUDIT_COLUMNS} FROM audit_log WHERE {' AND '.join(where)}"
        " ORDER BY id DESC LIMIT :limit"
    )
    entries = [audit_entry(r) for r in conn.execute(sql, bind).fetchall()]
    if len(entries) > query.limit:
        del entries[query.limit :]
        return AuditPage(entries, next_cursor=entries[-1].id)
    return AuditPage(entries, next_cursor=None)


def purge_audit(conn: sqlite3.Connection, params: PurgeAuditParams) -> int:
    with transaction(conn):
        return conn.execute(PURGE_AUDIT, (params.before, params.limit)).rowcount


class SqliteAudit:
    """The :class:`~faena.ports.audit.AuditStore` operations of the SQLite store."""

    async def _write(self, op: Callable[[sqlite3.Connection, A], T], arg: A) -> T:
        raise NotImplementedError  # provided by SqliteStore

    async def _read(self, op: Callable[[sqlite3.Connection, A], T], arg: A) -> T:
        raise NotImplementedError  # provided by SqliteStore

    async def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        if entries:
            await self._write(append_audit, entries)

    async def list_audit(self, query: AuditQuery) -> AuditPage:
        return await self._read(list_audit, query)

    async def purge_audit(self, params: PurgeAuditParams) -> int:
        return await self._write(purge_audit, params)
