"""The lease reaper: jobs whose worker stopped renewing their lease are put back or failed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from faena.domain.jobs import JobState
from faena.ports.bus import EventBus
from faena.ports.clock import Clock
from faena.ports.store import ExpireLeasesParams, JobStore
from faena.ports.telemetry import NULL_OBSERVER, JobObserver
from faena.services.breaker import log_store_error
from faena.services.orchestrator import state_event

log = structlog.get_logger("faena.leases")


class LeaseReaper:
    def __init__(
        self,
        store: JobStore,
        bus: EventBus,
        clock: Clock,
        *,
        interval_s: float = 1.0,
        on_runnable: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._interval_s = interval_s
        self._on_runnable = on_runnable
        self.expired_total = 0
        self._observer: JobObserver = NULL_OBSERVER
        self.last_pass: float | None = None  # loop time of the last completed pass (/readyz)

    def set_observer(self, observer: JobObserver) -> None:
        self._observer = observer

    def set_on_runnable(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` when an outcome makes work claimable again (a retry, a lease)."""
        self._on_runnable = hook

    async def reap_once(self) -> int:
        now = self._clock.now()
        jobs = await self._store.expire_leases(ExpireLeasesParams(now=now))
        if jobs:
            self.expired_total += len(jobs)
            self._observer.expired(jobs)
            log.warning("leases expired", jobs=len(jobs))
            self._bus.publish([state_event(j, now) for j in jobs])
            if self._on_runnable is not None and any(j.state is JobState.QUEUED for j in jobs):
                self._on_runnable()
        return len(jobs)

    async def run(self) -> None:
        while True:
            try:
                while await self.reap_once() > 0:
                    pass
                self.last_pass = asyncio.get_running_loop().time()
            except Exception as e:
                log_store_error(log, "lease reaper failed; trying again", e, in_s=self._interval_s)
            await asyncio.sleep(self._interval_s)
