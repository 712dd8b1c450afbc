"""A run advances on the server that owns it when its step job finishes on another server.

Two stores on one PostgreSQL schema play servers A and B. A runs the workflow engine with its
change feed feeding its bus, and a sweep far too slow to matter (60 s): the only way A can learn
in time that B finished the step job is the NOTIFY that B's commit sends. B claims and completes
the job through its own store, as its pool or one of its remote workers would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import dataclass

import pytest
from tests.integration.conftest import PgStoreFactory

from faena.adapters.local_bus import LocalBus
from faena.adapters.postgres.listener import PostgresChangeFeed
from faena.adapters.postgres.store import PostgresStore
from faena.domain.jobs import JobState
from faena.domain.workflows import load_yaml
from faena.ports.clock import SystemClock
from faena.ports.store import ClaimParams, CompleteParams, Completion
from faena.services.catalog import KindCatalog
from faena.services.orchestrator import Orchestrator
from faena.services.workflow_engine import WorkflowEngine
from faena.services.workflows import WorkflowService

pytestmark = pytest.mark.postgres

FLOW = """
name: two-steps
steps:
  - {id: a, kind: noop}
  - {id: b, kind: noop, needs: [a], with: {got: "{{ steps.a.output }}"}}
"""


@dataclass
class ServerA:
    store: PostgresStore
    bus: LocalBus
    engine: WorkflowEngine
    service: WorkflowService
    feed: PostgresChangeFeed


@pytest.fixture
async def two_servers(
    pg_store_factory: PgStoreFactory,
) -> AsyncIterator[tuple[ServerA, PostgresStore]]:
    a, b = await pg_store_factory(), await pg_store_factory()
    bus, clock = LocalBus(), SystemClock()
    catalog = KindCatalog()
    catalog.add_source(lambda: frozenset({"noop"}))
    orchestrator = Orchestrator(a, bus, clock, catalog)
    engine = WorkflowEngine(a, orchestrator, bus, clock, sweep_s=60.0)
    feed = a.change_feed()
    feed.start(bus.publish, orchestrator.wake_claimers)
    assert await feed.wait_connected(5)
    engine.start()
    try:
        yield ServerA(a, bus, engine, WorkflowService(engine), feed), b
    finally:
        await engine.stop()
        await feed.stop()


async def finish_on(store: PostgresStore, result: object) -> float:
    """Claim the one runnable job on ``store`` and complete it; the time of the commit."""
    for _ in range(200):
        jobs = await store.claim(ClaimParams(worker_id="b", limit=1, lease_s=30, now=time.time()))
        if jobs:
            break
        await asyncio.sleep(0.01)
    [job] = jobs
    await store.complete_many(
        CompleteParams([Completion(job.id, job.attempts, JobState.SUCCEEDED, result)], time.time())
    )
    return time.perf_counter()


async def test_a_step_finished_on_another_server_advances_the_run_within_milliseconds(
    two_servers: tuple[ServerA, PostgresStore],
) -> None:
    server_a, store_b = two_servers
    service = server_a.service
    await service.apply("default", service.parse(load_yaml(FLOW)))
    delays: list[float] = []
    for i in range(3):
        run, _ = await service.start("default", "two-steps", None)
        with closing(server_a.bus.subscribe("default")) as sub:
            committed = await finish_on(store_b, {"n": i})  # step a, on server B
            while True:  # A submits step b as soon as it hears of a's end
                event = await asyncio.wait_for(sub.get(), 5)
                if event.type == "step.state" and event.data == {
                    "run_id": run.id,
                    "workflow": "two-steps",
                    "step": "b",
                    "state": "running",
                    "error": None,
                }:
                    delays.append(time.perf_counter() - committed)
                    break
        await finish_on(store_b, None)  # step b, on server B: the run ends
        done = await service.wait_run("default", run.id, 5)
        assert done.state.value == "succeeded"
        assert done.step("b").output is None
    print(f"cross-server advance (ms): {[round(d * 1000, 1) for d in delays]}")
    # The sweep runs every 60 s here: only the change feed can explain sub-second advances.
    assert max(delays) < 1.0, delays
