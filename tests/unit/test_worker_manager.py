"""The worker manager without gRPC: fake channels, the in-memory store, a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from faena.adapters.local_bus import LocalBus
from faena.adapters.memory.store import MemoryStore
from faena.domain.jobs import Job, JobSpec, JobState
from faena.domain.workers import Capacity
from faena.ports.store import CancelParams, SubmitParams
from faena.services.completions import Completer
from faena.services.logs import LogWriter
from faena.services.worker_manager import (
    ManagerConfig,
    Registration,
    ResultIn,
    WorkerManager,
)
from faena.services.worker_registry import WorkerRegistry
from faena.services.worker_tokens import WorkerTokens


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def now(self) -> float:
        return self.t


@dataclass
class FakeChannel:
    assigned: list[Job] = field(default_factory=list)
    cancelled: list[tuple[str, str]] = field(default_factory=list)
    closed: list[tuple[str, bool]] = field(default_factory=list)

    def assign(self, job: Job) -> None:
        self.assigned.append(job)

    def cancel(self, job_id: str, attempt: int, reason: str) -> None:
        self.cancelled.append((job_id, reason))

    def renew_credential(self, credential: str, expires_at: float) -> None:
        pass

    def close(self, reason: str, *, retry: bool) -> None:
        self.closed.append((reason, retry))


@dataclass
class World:
    store: MemoryStore
    clock: Clock
    manager: WorkerManager
    tokens: WorkerTokens
    completer: Completer

    async def submit(self, *specs: JobSpec) -> list[Job]:
        from faena.domain.ids import new_id

        ids = [new_id() for _ in specs]
        done = await self.store.submit_many(SubmitParams(list(specs), ids, self.clock.now()))
        return [s.job for s in done]

    async def connect(
        self,
        worker_id: str,
        labels: dict[str, str] | None = None,
        slots: int = 2,
        *,
        tenant: str | None = None,
        running: tuple[tuple[str, int, str], ...] = (),
    ):
        channel = FakeChannel()
        reg = Registration(
            worker_id=worker_id,
            kinds=frozenset({"noop"}),
            labels=labels or {},
            capacity=Capacity(slots=slots),
            version="t",
            host="h",
            running=running,
        )
        session = await self.manager.connect(reg, "token-1", channel, tenant=tenant)
        return session, channel


@pytest.fixture
async def world() -> AsyncIterator[World]:
    store, clock, bus = MemoryStore(), Clock(), LocalBus()
    logs, completer = LogWriter(store, bus, clock), Completer(store, bus, clock)
    registry = WorkerRegistry(store, clock)
    tokens = WorkerTokens(store, clock)
    manager = WorkerManager(
        store,
        store,
        bus=bus,
        clock=clock,
        logs=logs,
        completer=completer,
        registry=registry,
        tokens=tokens,
        config=ManagerConfig(server_id="s1", lease_s=30),
    )
    yield World(store, clock, manager, tokens, completer)
    await completer.close()
    await logs.close()


async def test_jobs_are_assigned_to_the_worker_with_the_required_labels(world: World) -> None:
    _, eu = await world.connect("eu", {"region": "eu"})
    _, us = await world.connect("us", {"region": "us"})
    a, b = await world.submit(
        JobSpec("noop", labels={"region": "us"}), JobSpec("noop", labels={"region": "eu"})
    )
    assert await world.manager.place_once() == 2
    assert [j.id for j in us.assigned] == [a.id]
    assert [j.id for j in eu.assigned] == [b.id]
    assert us.assigned[0].worker_id == "us" and us.assigned[0].attempts == 1


async def test_a_worker_gets_no_more_than_its_free_slots(world: World) -> None:
    session, _ = await world.connect("w", slots=2)
    await world.submit(*(JobSpec("noop") for _ in range(5)))
    assert await world.manager.place_once() == 2
    assert await world.manager.place_once() == 0
    assert session.free_slots == 0


async def test_a_result_completes_the_job_and_frees_the_slot(world: World) -> None:
    session, _ = await world.connect("w")
    (job,) = await world.submit(JobSpec("noop"))
    await world.manager.place_once()
    await world.manager.result(session, ResultIn(job.id, 1, "default", succeeded=True, result=7))
    await world.completer.drain()
    done = await world.store.get("default", job.id)
    assert done is not None and done.state is JobState.SUCCEEDED and done.result == 7
    assert session.free_slots == 2


async def test_a_failed_attempt_with_attempts_left_is_scheduled_again(world: World) -> None:
    session, _ = await world.connect("w")
    (job,) = await world.submit(JobSpec("noop", max_attempts=2))
    await world.manager.place_once()
    await world.manager.result(session, ResultIn(job.id, 1, "default", False, error="boom"))
    await world.completer.drain()
    again = await world.store.get("default", job.id)
    assert again is not None and again.state is JobState.SCHEDULED and again.error == "boom"


async def test_a_result_of_an_old_attempt_changes_nothing(world: World) -> None:
    session, _ = await world.connect("w")
    (job,) = await world.submit(JobSpec("noop"))
    await world.manager.place_once()
    await world.manager.result(session, ResultIn(job.id, 0, "default", succeeded=True))
    await world.completer.drain()
    still = await world.store.get("default", job.id)
    assert still is not None and still.state is JobState.RUNNING


async def test_a_lost_lease_becomes_a_cancel_for_the_worker(world: World) -> None:
    session, channel = await world.connect("w")
    (job,) = await world.submit(JobSpec("noop"))
    await world.manager.place_once()
    await world.store.cancel(CancelParams("default", job.id, world.clock.now()))
    await world.manager.renew_leases()
    assert channel.cancelled == [(job.id, "lease lost")]
    assert session.held == {}


async def test_a_silent_worker_is_disconnected(world: World) -> None:
    _, channel = await world.connect("w")
    world.clock.t += 120
    await world.manager.renew_leases()
    assert channel.closed == [("no heartbeat", True)]
    assert "w" not in world.manager.sessions


async def test_revoking_a_token_closes_its_workers_for_good(world: World) -> None:
    _, channel = await world.connect("w")
    world.manager.revoked("token-1")
    assert channel.closed == [("worker token revoked", False)]


async def test_a_queued_job_is_explained_against_the_live_workers(world: World) -> None:
    await world.connect("w", {"gpu": "false"})
    (job,) = await world.submit(JobSpec("noop", labels={"gpu": "true"}))
    live = await world.manager._registry.live()
    why = world.manager.explain(job, live)
    assert why == "no connected worker serving 'noop' has label gpu=true"


async def test_a_job_goes_to_a_worker_with_room_for_its_resources(world: World) -> None:
    channels = {}
    for worker_id, cores in (("small", 1.0), ("big", 8.0)):
        reg = Registration(
            worker_id=worker_id,
            kinds=frozenset({"noop"}),
            labels={},
            capacity=Capacity(slots=4, cpu_cores=cores, memory_mb=1024),
            version="t",
            host="h",
        )
        channels[worker_id] = FakeChannel()
        await world.manager.connect(reg, "token-1", channels[worker_id], tenant=None)
    (job,) = await world.submit(JobSpec("noop", resources={"cpu": 4, "memory_mb": 256}))
    assert await world.manager.place_once() == 1
    assert [j.id for j in channels["big"].assigned] == [job.id]
    (second,) = await world.submit(JobSpec("noop", resources={"cpu": 6}))
    assert await world.manager.place_once() == 0  # 4 of big's 8 cores are taken
    live = await world.manager._registry.live()
    why = world.manager.explain(await world.store.get("default", second.id), live)  # type: ignore[arg-type]
    assert why == "no matching worker has cpu=6, memory_mb=0 free right now"


# -- tenancy: a worker on a tenant's token serves that tenant only --------------------------


async def test_a_worker_bound_to_a_tenant_is_given_only_that_tenants_jobs(world: World) -> None:
    _, bound = await world.connect("b-worker", slots=10, tenant="b")
    a_job, b_job = await world.submit(JobSpec("noop", tenant="a"), JobSpec("noop", tenant="b"))
    assert await world.manager.place_once() == 1
    assert [j.id for j in bound.assigned] == [b_job.id]
    still = await world.store.get("a", a_job.id)
    assert still is not None and still.state is JobState.QUEUED


async def test_a_shared_worker_serves_every_tenant(world: World) -> None:
    _, shared = await world.connect("shared", slots=10, tenant=None)
    jobs = await world.submit(JobSpec("noop", tenant="a"), JobSpec("noop", tenant="b"))
    assert await world.manager.place_once() == 2
    assert {j.id for j in shared.assigned} == {j.id for j in jobs}


async def test_bound_workers_find_their_tenants_jobs_behind_a_flood_of_another_tenant(
    world: World,
) -> None:
    """One read per bound tenant: a window full of tenant a's jobs does not hide b's."""
    await world.connect("a-worker", slots=1, tenant="a")
    _, bound = await world.connect("b-worker", slots=1, tenant="b")
    await world.submit(*(JobSpec("noop", tenant="a", priority=9) for _ in range(150)))
    (b_job,) = await world.submit(JobSpec("noop", tenant="b"))
    assert await world.manager.place_once() == 2
    assert [j.id for j in bound.assigned] == [b_job.id]


async def test_a_job_of_a_tenant_without_its_workers_is_explained_without_naming_others(
    world: World,
) -> None:
    await world.connect("a-worker", tenant="a")
    (job,) = await world.submit(JobSpec("noop", tenant="b"))
    live = await world.manager._registry.live()
    assert world.manager.explain(job, live) == "no worker serving this tenant is connected"


async def test_a_worker_id_in_use_for_another_tenant_is_refused(world: World) -> None:
    from faena.domain.errors import Forbidden

    _, first = await world.connect("w", tenant="a")
    with pytest.raises(Forbidden):
        await world.connect("w", tenant="b")
    assert first.closed == []  # the first worker keeps its connection


async def test_a_late_result_for_another_tenants_job_is_dropped(world: World) -> None:
    _, _ = await world.connect("a-worker", tenant="a")
    (a_job,) = await world.submit(JobSpec("noop", tenant="a"))
    assert await world.manager.place_once() == 1
    intruder, _ = await world.connect("b-worker", tenant="b")
    await world.manager.result(intruder, ResultIn(a_job.id, 1, "a", succeeded=True, result="x"))
    await world.completer.drain()
    still = await world.store.get("a", a_job.id)
    assert still is not None and still.state is JobState.RUNNING


async def test_a_reconnecting_bound_worker_does_not_adopt_another_tenants_job(
    world: World,
) -> None:
    await world.connect("a-worker", tenant="a")
    (a_job,) = await world.submit(JobSpec("noop", tenant="a"))
    await world.manager.place_once()
    intruder, channel = await world.connect("b-worker", tenant="b", running=((a_job.id, 1, "a"),))
    assert intruder.held == {}
    assert channel.cancelled == [(a_job.id, "not a job of this worker's tenant")]
