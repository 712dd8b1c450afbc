"""Retention: finished jobs older than the retention period are deleted, with their logs, and
audit entries older than the audit retention period (``FAENA_AUDIT_RETENTION_DAYS``, 90 days).

The runtime runs :meth:`Retention.run` in the background: every ``interval_s`` it purges in
bounded batches (``JobStore.purge_finished``), pausing between batches so the hot path keeps
its turn on the store (SQLite has one writer), until a batch comes back short. Other areas add
their own purges (artefacts and their bytes, cached document results) with :meth:`add`; they
run in the same pass, each failing on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from faena.ports.clock import Clock
from faena.ports.store import JobStore, PurgeParams
from faena.services.audit import AuditLog

log = structlog.get_logger("faena.retention")

DAY_S = 86_400.0

Purger = Callable[[], Awaitable[int]]  # deletes what is due, returns how many


class Retention:
    def __init__(
        self,
        store: JobStore,
        clock: Clock,
        *,
        keep_s: float | None,
        interval_s: float = 300.0,
        batch: int = 1000,
        pause_s: float = 0.01,
        audit: AuditLog | None = None,
        audit_keep_s: float = 0.0,
    ) -> None:
        if keep_s is not None and keep_s <= 0:
            raise ValueError("keep_s must be positive (no Retention at all keeps jobs forever)")
        if batch <= 0:
            raise ValueError("batch must be positive")
        self._store = store
        self._clock = clock
        self._keep_s = keep_s
        self._interval_s = interval_s
        self._batch = batch
        self._pause_s = pause_s
        self.purged_total = 0
        self._audit = audit if audit_keep_s > 0 else None
        self._audit_keep_s = audit_keep_s
        self.audit_purged_total = 0
        self._purgers: list[tuple[str, Purger]] = []

    def add(self, name: str, purger: Purger) -> None:
        """Run ``purger`` on every pass too (``keep_s=None``: only these, jobs are kept)."""
        self._purgers.append((name, purger))

    async def purge_once(self) -> int:
        """Delete every job that finished more than ``keep_s`` ago, batch by batch, then run
        the other purges."""
        for name, purger in self._purgers:
            try:
                await purger()
            except Exception:
                log.exception("purge failed; trying again later", purge=name)
        if self._keep_s is None:
            return 0
        before = self._clock.now() - self._keep_s
        purged = 0
        while True:
            n = await self._store.purge_finished(PurgeParams(before=before, limit=self._batch))
            purged += n
            if n < self._batch:
                break
            await asyncio.sleep(self._pause_s)
        if purged:
            self.purged_total += purged
            log.info("finished jobs purged", jobs=purged, finished_before=before)
        return purged

    async def purge_audit_once(self) -> int:
        """Delete the audit entries older than the audit retention period."""
        if self._audit is None:
            return 0
        before = self._clock.now() - self._audit_keep_s
        purged = await self._audit.purge_before(before, batch=self._batch)
        if purged:
            self.audit_purged_total += purged
            log.info("audit entries purged", entries=purged, recorded_before=before)
        return purged

    async def run(self) -> None:
        while True:
            try:
                await self.purge_once()
                await self.purge_audit_once()
            except Exception:
                log.exception("retention purge failed; trying again later")
            await asyncio.sleep(self._interval_s)
