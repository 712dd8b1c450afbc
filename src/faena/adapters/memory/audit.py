"""The AuditStore in memory, mixed into :class:`~faena.adapters.memory.store.MemoryStore`."""

from __future__ import annotations

from bisect import insort
from collections.abc import Sequence
from typing import Any

from faena.domain.audit import AuditEntry
from faena.ports.audit import AuditPage, AuditQuery, PurgeAuditParams


class MemoryAudit:
    """The :class:`~faena.ports.audit.AuditStore` operations of the in-memory store."""

    def _audit(self) -> tuple[list[str], dict[str, AuditEntry]]:
        state: Any = self.__dict__.get("_audit_rows")
        if state is None:
            state = self.__dict__["_audit_rows"] = ([], {})  # ids in order, entries by id
        return state  # type: ignore[no-any-return]

    async def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        ids, by_id = self._audit()
        for entry in entries:
            if entry.id not in by_id:  # a retried batch is not recorded twice
                by_id[entry.id] = entry
                insort(ids, entry.id)

    async def list_audit(self, query: AuditQuery) -> AuditPage:
        ids, by_id = self._audit()
        found: list[AuditEntry] = []
        for entry_id in reversed(ids):
            if query.cursor is not None and entry_id >= query.cursor:
                continue
            e = by_id[entry_id]
            if (
                e.tenant == query.tenant
                and (query.action is None or e.action == query.action)
                and (query.outcome is None or e.outcome == query.outcome)
                and (query.key_prefix is None or e.key_prefix == query.key_prefix)
                and (query.target is None or e.target == query.target)
                and (query.since is None or e.at >= query.since)
                and (query.until is None or e.at < query.until)
            ):
                found.append(e)
                if len(found) > query.limit:
                    break
        if len(found) > query.limit:
            del found[query.limit :]
            return AuditPage(found, next_cursor=found[-1].id)
        return AuditPage(found, next_cursor=None)

    async def purge_audit(self, params: PurgeAuditParams) -> int:
        ids, by_id = self._audit()
        old = sorted((e.at, e.id) for e in by_id.values() if e.at < params.before)
        gone = {entry_id for _, entry_id in old[: params.limit]}
        for entry_id in gone:
            del by_id[entry_id]
        ids[:] = [i for i in ids if i not in gone]
        return len(gone)
