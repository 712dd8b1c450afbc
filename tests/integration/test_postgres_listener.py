"""The PostgreSQL change feed: what one server commits reaches the others over LISTEN/NOTIFY.

Two stores on one schema play two servers; the feed of one hears the other's changes (never its
own), batched per statement, and comes back by itself when its connection is killed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest
from tests.integration.conftest import PgStoreFactory

from faena.adapters.postgres.listener import PostgresChangeFeed
from faena.adapters.postgres.store import PostgresStore
from faena.domain.events import Event
from faena.domain.ids import new_id
from faena.domain.jobs import JobSpec, JobState
from faena.domain.logs import LogChunk, LogStream
from faena.ports.store import (
    CancelParams,
    ClaimParams,
    CompleteParams,
    Completion,
    ExtendLeasesParams,
    LeaseRef,
    SubmitParams,
)

pytestmark = pytest.mark.postgres

NOW = 1_700_000_000.0


class Heard:
    """What a feed delivered, awaitable."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.wakes = 0
        self.woken = asyncio.Event()

    def deliver(self, events: Sequence[Event]) -> None:
        for event in events:
            self.events.put_nowait(event)

    def wake(self) -> None:
        self.wakes += 1
        self.woken.set()

    async def next(self, n: int = 1) -> list[Event]:
        return [await asyncio.wait_for(self.events.get(), 5) for _ in range(n)]


@pytest.fixture
async def servers(
    pg_store_factory: PgStoreFactory,
) -> AsyncIterator[tuple[PostgresStore, PostgresStore, Heard, PostgresChangeFeed]]:
    """Server A's store; server B's store with its started feed."""
    a = await pg_store_factory()
    b = await pg_store_factory()
    heard = Heard()
    feed = b.change_feed()
    feed.start(heard.deliver, heard.wake)
    assert await feed.wait_connected(5)
    await asyncio.wait_for(heard.woken.wait(), 5)  # a new connection looks for missed work
    heard.woken.clear()
    try:
        yield a, b, heard, feed
    finally:
        await feed.stop()


async def submit(store: PostgresStore, specs: list[JobSpec]) -> list[str]:
    ids = [new_id() for _ in specs]
    await store.submit_many(SubmitParams(specs=specs, ids=ids, now=NOW))
    return ids


async def test_a_submit_on_one_server_wakes_the_other_and_reaches_its_bus(
    servers: tuple[PostgresStore, PostgresStore, Heard, PostgresChangeFeed],
) -> None:
    a, _, heard, _ = servers

    [job_id] = await submit(a, [JobSpec(kind="noop", tenant="acme")])

    await asyncio.wait_for(heard.woken.wait(), 5)
    [event] = await heard.next()
    assert (event.type, event.tenant, event.job_id) == ("job.state", "acme", job_id)
    assert event.data == {"state": "queued", "attempts": 0}


async def test_a_server_does_not_hear_its_own_changes(
    servers: tuple[PostgresStore, PostgresStore, Heard, PostgresChangeFeed],
) -> None:
    a, b, heard, _ = servers

    await submit(b, [JobSpec(kind="noop")])
    [from_a] = await submit(a, [JobSpec(kind="noop")])

    # Notifications arrive in commit order: had B's own been delivered, it would come first.
    [event] = await heard.next()
    assert event.job_id == from_a
    assert heard.events.empty()


async def test_every_state_change_is_announced_but_lease_renewals_are_not(
    servers: tuple[PostgresStore, PostgresStore, Heard, PostgresChangeFeed],
) -> None:
    a, _, heard, _ = servers
    ids = await submit(a, [JobSpec(kind="noop") for _ in range(2)])
    await heard.next(2)

    claimed = await a.claim(ClaimParams(worker_id="w", limit=2, lease_s=30, now=NOW))
    running = await heard.next(2)
    await a.extend_leases(
        ExtendLeasesParams("w", [LeaseRef(j.id, j.attempts) for j in claimed], 30, NOW + 1)
    )
    await a.complete_many(
        CompleteParams([Completion(ids[0], 1, JobState.SUCCEEDED, result=1)], NOW + 2)
    )
    await a.cancel(CancelParams(tenant="default", job_id=ids[1], now=NOW + 3))

    assert {(e.job_id, e.data["state"], e.data["attempts"]) for e in running} == {
        (ids[0], "running", 1),
        (ids[1], "running", 1),
    }
    after = await heard.next(2)  # the renewal sent nothing: the next two are these
    assert [(e.job_id, e.data["state"]) for e in after] == [
        (ids[0], "succeeded"),
        (ids[1], "cancelled"),
    ]


async def test_log_chunks_are_announced_once_per_job_with_the_last_sequence_number(
    servers: tuple[PostgresStore, PostgresStore, Heard, PostgresChangeFeed],
) -> None:
    a, _, heard, _ = servers
    [job_id] = await submit(a, [JobSpec(kind="noop")])
    await heard.next()

    await a.append_logs(
        [
            LogChunk(job_id=job_id, seq=i, stream=LogStream.STDOUT, data=f"{i}\n", ts=NOW)
            for i in range(3)
        ]
    )

    [event] = await heard.next()
    assert (event.type, event.job_id, event.data) == ("job.log", job_id, {"seq": 2})


async def test_a_large_batch_is_split_under_the_payload_limit_and_fully_delivered(
    servers: tuple[PostgresStore, PostgresStore, Heard, PostgresChangeFeed],
    pg_admin: asyncpg.Connection,
) -> None:
    a, _, heard, _ = servers
    sizes: list[int] = []
    await pg_admin.add_listener(a.channel, lambda *args: sizes.append(len(args[3].encode())))
    tenant = "t" * 200  # the longest tenant the domain allows

    ids = await submit(a, [JobSpec(kind="noop", tenant=tenant) for _ in range(2000)])

    events = await heard.next(2000)
    assert sorted(e.job_id for e in events) == sorted(ids)
    assert 2000 * 230 // 8000 < len(sizes) < 2000 // 20
    assert max(sizes) < 8000


async def test_a_rolled_back_change_is_never_announced(
    servers: tuple[PostgresStore, PostgresStore, Heard, PostgresChangeFeed],
    pg_admin: asyncpg.Connection,
    pg_schema: str,
) -> None:
    a, _, heard, _ = servers
    first, second = await submit(a, [JobSpec(kind="noop"), JobSpec(kind="noop")])
    await heard.next(2)

    tx = pg_admin.transaction()
    await tx.start()
    await pg_admin.execute(f"SET LOCAL faena.channel = '{a.channel}'")
    await pg_admin.execute(
        f"UPDATE {pg_schema}.jobs SET state = 'cancelled' WHERE id = $1", first
    )
    await tx.rollback()
    await a.cancel(CancelParams(tenant="default", job_id=second, now=NOW))

    [event] = await heard.next()
    assert (event.job_id, event.data["state"]) == (second, "cancelled")


async def test_the_feed_reconnects_after_its_connection_is_killed_and_wakes_the_pool(
    servers: tuple[PostgresStore, PostgresStore, Heard, PostgresChangeFeed],
    pg_admin: asyncpg.Connection,
) -> None:
    a, _, heard, feed = servers

    killed = await pg_admin.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name = 'faena-listener' AND query = $1",
        f'LISTEN "{feed.channel}"',
    )
    assert killed == 1
    await asyncio.wait_for(heard.woken.wait(), 10)  # reconnected: looks for missed work
    assert feed.connected and feed.reconnects == 1

    [job_id] = await submit(a, [JobSpec(kind="noop")])
    [event] = await heard.next()
    assert event.job_id == job_id
