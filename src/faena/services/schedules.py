"""The cron scheduler: starts a run for every due tick of every schedule, exactly once.

Every server polls for due schedules. A tick is fired by starting a run with the idempotency key
``cron:{workflow}:{tick}`` — the store keeps one run per key, so two servers firing the same
tick start one run — and then moving the schedule to its next tick with a compare-and-swap on
``next_fire_at``. A crash between the two fires the tick again on the next poll, which finds the
run already there. Ticks missed while every server was down collapse into one run on start
(``catch_up: true``, the default) or are skipped (``catch_up: false``).
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from faena.domain.cron import next_tick
from faena.domain.errors import FaenaError
from faena.domain.runs import Schedule
from faena.ports.clock import Clock
from faena.ports.workflows import AdvanceScheduleParams, DueSchedulesParams
from faena.services.workflows import WorkflowService

log = structlog.get_logger("faena.schedules")

MISSED_AFTER_S = 60.0  # a tick later than this was missed (the servers were down)


def cron_key(workflow: str, tick: float) -> str:
    return f"cron:{workflow}:{tick:.0f}"


class Scheduler:
    def __init__(self, workflows: WorkflowService, clock: Clock, *, poll_s: float = 1.0) -> None:
        self.workflows = workflows
        self.store = workflows.store
        self.clock = clock
        self.poll_s = poll_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cron")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("cron poll failed", error=repr(e))
            await asyncio.sleep(self.poll_s)

    async def tick(self) -> int:
        """Fire every due schedule once; return how many runs this call started."""
        now = self.clock.now()
        started = 0
        for schedule in await self.store.due_schedules(DueSchedulesParams(now=now)):
            started += await self._fire(schedule, now)
        return started

    async def _fire(self, schedule: Schedule, now: float) -> int:
        tick = schedule.next_fire_at
        missed = now - tick > MISSED_AFTER_S
        created = False
        if schedule.catch_up or not missed:
            try:
                _, created = await self.workflows.start(
                    schedule.tenant,
                    schedule.workflow,
                    {},
                    trigger="schedule",
                    idempotency_key=cron_key(schedule.workflow, tick),
                )
            except FaenaError as e:  # a broken workflow must not block its schedule forever
                log.warning(
                    "scheduled run not started", workflow=schedule.workflow, error=e.message
                )
        following = next_tick(schedule.cron, schedule.timezone, max(tick, now))
        await self.store.advance_schedule(
            AdvanceScheduleParams(schedule.tenant, schedule.workflow, tick, following)
        )
        return int(created)
