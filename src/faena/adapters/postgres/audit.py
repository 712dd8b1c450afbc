"""The AuditStore on PostgreSQL, mixed into :class:`~faena.adapters.postgres.store.PostgresStore`.

A batch of entries (many tenants' at once) is one ``INSERT … SELECT FROM unnest(…)`` as the
owner; a tenant's list runs under row-level security (``faena_tenant``)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from faena.domain.audit import AuditEntry
from faena.ports.audit import AuditPage, AuditQuery, PurgeAuditParams

AUDIT_COLUMNS = (
    "id, at, tenant, key_prefix, client_ip, action, target, outcome, status, request_id, detail"
)
INSERT_AUDIT = f"""
INSERT INTO audit_log ({AUDIT_COLUMNS})
SELECT * FROM unnest($1::text[], $2::float8[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::int[], $10::text[], $11::text[])
ON CONFLICT (id) DO NOTHING"""
LIST_AUDIT = f"""
SELECT {AUDIT_COLUMNS} FROM audit_log
WHERE tenant = $1
  AND ($2::text IS NULL OR action = $2)
  AND ($3::text IS NULL OR outcome = $3)
  AND ($4::text IS NULL OR key_prefix = $4)
  AND ($5::text IS NULL OR target = $5)
  AND ($6::float8 IS NULL OR at >= $6)
  AND ($7::float8 IS NULL OR at < $7)
  AND ($8::text IS NULL OR id < $8)
ORDER BY id DESC LIMIT $9"""
PURGE_AUDIT = """
WITH old AS (SELECT id FROM audit_log WHERE at < $1 ORDER BY at LIMIT $2)
DELETE FROM audit_log a USING old WHERE a.id = old.id"""


def _entry(r: Any) -> AuditEntry:
    return AuditEntry(
        id=r[0],
        at=r[1],
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


class PostgresAudit:
    """The :class:`~faena.ports.audit.AuditStore` operations of the PostgreSQL store."""

    if TYPE_CHECKING:

        def _connection(self, doing: str) -> AbstractAsyncContextManager[Any]: ...

        def _tenant_connection(
            self, tenant: str, doing: str
        ) -> AbstractAsyncContextManager[Any]: ...

    async def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        columns = (
            [e.id for e in entries],
            [e.at for e in entries],
            [e.tenant for e in entries],
            [e.key_prefix for e in entries],
            [e.client_ip for e in entries],
            [e.action for e in entries],
            [e.target for e in entries],
            [e.outcome for e in entries],
            [e.status for e in entries],
            [e.request_id for e in entries],
            [e.detail for e in entries],
        )
        async with self._connection("writing audit entries") as conn:
            await conn.execute(INSERT_AUDIT, *columns)

    async def list_audit(self, query: AuditQuery) -> AuditPage:
        async with self._tenant_connection(query.tenant, "listing audit entries") as conn:
            rows = await conn.fetch(
                LIST_AUDIT,
                query.tenant,
                query.action,
                query.outcome,
                query.key_prefix,
                query.target,
                query.since,
                query.until,
                query.cursor,
                query.limit + 1,
            )
        entries = [_entry(r) for r in rows[: query.limit]]
        more = len(rows) > query.limit and bool(entries)
        return AuditPage(entries, next_cursor=entries[-1].id if more else None)

    async def purge_audit(self, params: PurgeAuditParams) -> int:
        if params.limit <= 0:
            return 0
        async with self._connection("purging audit entries") as conn:
            status: str = await conn.execute(PURGE_AUDIT, params.before, params.limit)
        return int(status.rsplit(" ", 1)[-1])
