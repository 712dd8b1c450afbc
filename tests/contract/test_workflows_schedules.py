"""Cron schedules on every store: each tick fires exactly once, even with two schedulers
(two servers) polling at the same moment; missed ticks fire once or are skipped; pause."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from faena.domain.errors import NotFound, ValidationError
from faena.ports.workflows import ListRunsParams
from faena.services.schedules import MISSED_AFTER_S, Scheduler
from tests.contract.workflow_support import TENANT, Harness

EVERY_MINUTE = """
name: tick
inputs: {who: {type: string, default: cron}}
schedule: {cron: "* * * * *", timezone: Europe/Madrid}
steps: [{id: a, kind: noop, with: {who: "{{ inputs.who }}"}}]
"""


@pytest.fixture
def h(store: Any) -> Harness:
    return Harness(store)


async def runs(h: Harness) -> list[Any]:
    return (await h.service.list_runs(ListRunsParams(TENANT, workflow="tick"))).runs


async def test_two_schedulers_fire_each_tick_exactly_once(h: Harness) -> None:
    await h.apply(EVERY_MINUTE)
    schedule = await h.store.get_schedule(TENANT, "tick")
    assert schedule is not None and schedule.next_fire_at % 60 == 0
    servers = [Scheduler(h.service, h.clock), Scheduler(h.service, h.clock)]
    for minute in range(3):
        h.clock.t = schedule.next_fire_at + 60 * minute + 0.5
        started = await asyncio.gather(*(s.tick() for s in servers))
        assert sum(started) == 1
        assert sum(await asyncio.gather(*(s.tick() for s in servers))) == 0
    found = await runs(h)
    assert len(found) == 3
    assert {r.trigger for r in found} == {"schedule"} and found[0].inputs == {"who": "cron"}
    assert len({r.idempotency_key for r in found}) == 3


async def test_a_tick_fired_but_not_advanced_is_not_fired_twice(h: Harness) -> None:
    """A crash after the run started and before next_fire_at moved: the next poll finds the
    tick's run by its key."""
    await h.apply(EVERY_MINUTE)
    schedule = await h.store.get_schedule(TENANT, "tick")
    assert schedule is not None
    h.clock.t = schedule.next_fire_at + 1
    from faena.services.schedules import cron_key

    await h.service.start(
        TENANT, "tick", {}, idempotency_key=cron_key("tick", schedule.next_fire_at)
    )
    assert await Scheduler(h.service, h.clock).tick() == 0
    assert len(await runs(h)) == 1
    after = await h.store.get_schedule(TENANT, "tick")
    assert after is not None and after.next_fire_at == schedule.next_fire_at + 60


async def test_missed_ticks_fire_once_on_start(h: Harness) -> None:
    await h.apply(EVERY_MINUTE)
    schedule = await h.store.get_schedule(TENANT, "tick")
    assert schedule is not None
    h.clock.t = schedule.next_fire_at + 3600  # an hour down
    assert await Scheduler(h.service, h.clock).tick() == 1
    assert await Scheduler(h.service, h.clock).tick() == 0
    after = await h.store.get_schedule(TENANT, "tick")
    assert after is not None and after.next_fire_at > h.clock.t


async def test_missed_ticks_are_skipped_without_catch_up(h: Harness) -> None:
    await h.apply(EVERY_MINUTE.replace("timezone: Europe/Madrid", "catch_up: false"))
    schedule = await h.store.get_schedule(TENANT, "tick")
    assert schedule is not None
    h.clock.t = schedule.next_fire_at + MISSED_AFTER_S + 1
    assert await Scheduler(h.service, h.clock).tick() == 0
    assert await runs(h) == []


async def test_a_paused_schedule_does_not_fire_and_resumes_at_the_next_tick(h: Harness) -> None:
    await h.apply(EVERY_MINUTE)
    schedule = await h.store.get_schedule(TENANT, "tick")
    assert schedule is not None
    paused = await h.service.pause(TENANT, "tick", paused=True)
    assert paused.paused and (await h.service.get(TENANT, "tick")).paused
    h.clock.t = schedule.next_fire_at + 600
    assert await Scheduler(h.service, h.clock).tick() == 0
    resumed = await h.service.pause(TENANT, "tick", paused=False)
    assert not resumed.paused and resumed.next_fire_at > h.clock.t
    assert await Scheduler(h.service, h.clock).tick() == 0
    with pytest.raises(NotFound):
        await h.service.pause(TENANT, "nope", paused=True)


async def test_reapplying_keeps_the_schedule_and_removing_it_stops_it(h: Harness) -> None:
    await h.apply(EVERY_MINUTE)
    await h.service.pause(TENANT, "tick", paused=True)
    await h.apply(EVERY_MINUTE.replace("default: cron", "default: cron2"))
    again = await h.store.get_schedule(TENANT, "tick")
    assert again is not None and again.paused
    await h.apply(
        EVERY_MINUTE.replace('schedule: {cron: "* * * * *", timezone: Europe/Madrid}\n', "")
    )
    assert await h.store.get_schedule(TENANT, "tick") is None


async def test_bad_schedules_are_refused(h: Harness) -> None:
    for cron, message in (
        ("* * * *", "5-field"),
        ("0 0 * * * *", "5-field"),
        ("99 * * * *", "5-field"),
    ):
        with pytest.raises(ValidationError, match=message):
            await h.apply(EVERY_MINUTE.replace('"* * * * *"', f'"{cron}"'))
    with pytest.raises(ValidationError, match="time zone"):
        await h.apply(EVERY_MINUTE.replace("Europe/Madrid", "Mars/Olympus"))
    with pytest.raises(ValidationError, match="give this input a default"):
        await h.apply(EVERY_MINUTE.replace("{type: string, default: cron}", "string"))
