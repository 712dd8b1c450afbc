"""The worker registry tells live streams about the workers it records: ``worker.connected``,
``worker.heartbeat``, ``worker.draining`` and ``worker.disconnected``, for the tenant that
lists each worker: its own for a bound one, the operator's for a shared one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from faena.adapters.local_bus import LocalBus, LocalSubscription
from faena.adapters.memory.store import MemoryStore
from faena.domain.tenants import OPERATOR_TENANT
from faena.domain.workers import Capacity, Load, WorkerInfo, WorkerKind, WorkerState
from faena.services.worker_registry import WorkerRegistry


class Clock:
    t = 1_700_000_000.0

    def now(self) -> float:
        return self.t


@dataclass
class World:
    registry: WorkerRegistry
    events: LocalSubscription


@pytest.fixture
async def world() -> AsyncIterator[World]:
    store = MemoryStore()
    await store.open()
    bus = LocalBus()
    with bus.subscribe() as events:
        yield World(WorkerRegistry(store, Clock(), bus=bus), events)
    await store.close()


def worker(**changes: object) -> WorkerInfo:
    info = WorkerInfo(
        id="w-1",
        kind=WorkerKind.REMOTE,
        kinds=frozenset({"noop"}),
        labels={"zone": "eu"},
        capacity=Capacity(slots=4),
        version="1",
        host="edge-1",
        server="s-1",
        started_at=Clock.t,
        last_heartbeat=Clock.t,
    )
    return info.evolve(**changes)


def drained(events: LocalSubscription) -> list[tuple[str, str, dict[str, object]]]:
    out = []
    while not events.queue.empty():
        e = events.queue.get_nowait()
        out.append((e.type, e.tenant, e.data))
    return out


async def test_a_worker_connects_reports_load_drains_and_leaves(world: World) -> None:
    await world.registry.save(worker())
    await world.registry.save(worker(load=Load(cpu_percent=40.0, memory_percent=25.0, running=2)))
    await world.registry.save(worker(state=WorkerState.DRAINING))
    await world.registry.save(worker(state=WorkerState.DRAINING))
    await world.registry.disconnect(["w-1"])
    seen = drained(world.events)
    assert [(t, tenant) for t, tenant, _ in seen] == [
        ("worker.connected", OPERATOR_TENANT),
        ("worker.heartbeat", OPERATOR_TENANT),
        ("worker.draining", OPERATOR_TENANT),
        ("worker.heartbeat", OPERATOR_TENANT),
        ("worker.disconnected", OPERATOR_TENANT),
    ]
    load = seen[1][2]
    assert load["worker_id"] == "w-1" and load["running"] == 2
    assert load["load"] == {"cpu_percent": 40.0, "memory_percent": 25.0}
    assert seen[2][2]["state"] == "draining"
    assert seen[4][2]["state"] == "disconnected" and seen[4][2]["running"] == 0


async def test_a_worker_that_comes_back_is_connected_again(world: World) -> None:
    await world.registry.save(worker())
    await world.registry.disconnect(["w-1"])
    await world.registry.save(worker())
    assert [t for t, _, _ in drained(world.events)] == [
        "worker.connected",
        "worker.disconnected",
        "worker.connected",
    ]


async def test_disconnecting_a_worker_never_recorded_here_says_nothing(world: World) -> None:
    await world.registry.disconnect(["recorded-by-another-server"])
    assert drained(world.events) == []


async def test_the_local_pool_is_announced_as_it_is_published(world: World) -> None:
    world.registry.add_local(lambda: worker(id="pool", kind=WorkerKind.LOCAL))
    await world.registry.publish()
    await world.registry.publish()
    assert [(t, e["kind"]) for t, _, e in drained(world.events)] == [
        ("worker.connected", "local"),
        ("worker.heartbeat", "local"),
    ]


async def test_a_worker_bound_to_a_tenant_is_that_tenants_event(world: World) -> None:
    await world.registry.save(worker(tenant="acme"))
    [(_, tenant, _)] = drained(world.events)
    assert tenant == "acme"
