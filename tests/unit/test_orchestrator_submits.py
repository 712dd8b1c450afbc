"""Concurrent submits share store transactions (group commit) without mixing up callers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from faena.adapters.local_bus import LocalBus
from faena.adapters.memory.store import MemoryStore
from faena.domain.errors import Unavailable
from faena.ports.clock import SystemClock
from faena.ports.store import SubmitParams, Submitted
from faena.services.catalog import KindCatalog
from faena.services.orchestrator import JobRequest, Orchestrator


class CountingStore(MemoryStore):
    """The real in-memory store, counting its submit transactions (and able to fail them)."""

    def __init__(self) -> None:
        super().__init__()
        self.transactions: list[int] = []
        self.fail = False

    async def submit_many(self, params: SubmitParams) -> list[Submitted]:
        await asyncio.sleep(0.001)  # a transaction takes time: callers pile up behind it
        if self.fail:
            raise Unavailable("the database is unavailable")
        self.transactions.append(len(params.specs))
        return await super().submit_many(params)


def _orchestrator(store: CountingStore) -> Orchestrator:
    catalog = KindCatalog()
    catalog.add_source(lambda: {"noop"})
    return Orchestrator(store, LocalBus(), SystemClock(), catalog)


async def test_concurrent_single_submits_share_transactions_and_get_their_own_job() -> None:
    store = CountingStore()
    orchestrator = _orchestrator(store)
    results = await asyncio.gather(
        *(
            orchestrator.submit("default", [JobRequest(kind="noop", payload={"n": i})])
            for i in range(100)
        )
    )
    assert [r[0].job.payload for r in results] == [{"n": i} for i in range(100)]
    assert sum(store.transactions) == 100
    assert len(store.transactions) < 100


async def test_a_store_error_reaches_every_caller_of_that_transaction() -> None:
    store = CountingStore()
    store.fail = True
    orchestrator = _orchestrator(store)
    results = await asyncio.gather(
        *(orchestrator.submit("default", [JobRequest(kind="noop")]) for _ in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(r, Unavailable) for r in results)


async def test_the_same_idempotency_key_submitted_at_once_makes_one_job() -> None:
    store = CountingStore()
    orchestrator = _orchestrator(store)
    results: Sequence[list[Submitted]] = await asyncio.gather(
        *(
            orchestrator.submit("default", [JobRequest(kind="noop", idempotency_key="k")])
            for _ in range(3)
        )
    )
    assert len({r[0].job.id for r in results}) == 1
    assert sorted(r[0].created for r in results) == [False, False, True]


@pytest.mark.parametrize("n", [1, 3])
async def test_a_lone_submit_is_written_at_once(n: int) -> None:
    store = CountingStore()
    orchestrator = _orchestrator(store)
    for _ in range(n):
        await orchestrator.submit("default", [JobRequest(kind="noop")])
    assert store.transactions == [1] * n
