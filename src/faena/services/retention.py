"""Retention: finished jobs older than the retention period are deleted, with their logs.

The runtime runs :meth:`Retention.run` in the background: every ``interval_s`` it purges in
bounded batches (``JobStore.purge_finished``), pausing between batches so the hot path keeps
its turn on the store (SQLite has one writer), until a batch comes back short.
"""

from __future__ import annotations

import asyncio

import structlog

from faena.ports.clock import Clock
from faena.ports.store import JobStore, PurgeParams

log = structlog.get_logger("faena.retention")

DAY_S = 86_400.0


class Retention:
    def __init__(
        self,
        store: JobStore,
        clock: Clock,
        *,
        keep_s: float,
        interval_s: float = 300.0,
        batch: int = 1000,
        pause_s: float = 0.01,
    ) -> None:
        if keep_s <= 0:
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

    async def purge_once(self) -> int:
        """Delete every job that finished more than ``keep_s`` ago, batch by batch."""
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

    async def run(self) -> None:
        while True:
            try:
                await self.purge_once()
            except Exception:
                log.exception("retention purge failed; trying again later")
            await asyncio.sleep(self._interval_s)
