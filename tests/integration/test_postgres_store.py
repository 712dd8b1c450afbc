"""PostgreSQL-specific behaviour of PostgresStore: migrations, errors at the edge, concurrency.

What every store must do is in ``tests/contract``; these tests cover what only a shared,
multi-server database can get wrong.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from tests.integration.conftest import PgStoreFactory

from faena.adapters.postgres.migrate import latest_version
from faena.adapters.postgres.store import NOTIFY_CHANNEL, PostgresStore
from faena.domain.errors import SchemaError, Unavailable, ValidationError
from faena.domain.ids import new_id
from faena.domain.jobs import JobSpec, JobState
from faena.ports.store import (
    ClaimParams,
    CompleteParams,
    Completion,
    SubmitParams,
)

pytestmark = pytest.mark.postgres

NOW = 1_700_000_000.0


async def submit(store: PostgresStore, specs: list[JobSpec]) -> list[str]:
    ids = [new_id() for _ in specs]
    await store.submit_many(SubmitParams(specs=specs, ids=ids, now=NOW))
    return ids


async def test_two_stores_opening_together_apply_each_migration_once(
    pg_store_factory: PgStoreFactory, pg_admin: asyncpg.Connection, pg_schema: str
) -> None:
    stores = [await pg_store_factory(open=False) for _ in range(4)]

    await asyncio.gather(*(store.open() for store in stores))

    versions = await pg_admin.fetch(f"SELECT version FROM {pg_schema}.schema_migrations")
    assert sorted(r["version"] for r in versions) == list(range(1, latest_version() + 1))
    for store in stores:
        assert await store.schema_version() == latest_version()


async def test_a_database_newer_than_the_code_is_refused_naming_both_versions(
    pg_store: PostgresStore,
    pg_store_factory: PgStoreFactory,
    pg_admin: asyncpg.Connection,
    pg_schema: str,
) -> None:
    newer = latest_version() + 1
    await pg_admin.execute(
        f"INSERT INTO {pg_schema}.schema_migrations VALUES ($1, 'from_the_future', 0)", newer
    )

    with pytest.raises(SchemaError) as raised:
        await pg_store_factory()

    assert f"version {newer}" in raised.value.message
    assert f"version {latest_version()}" in raised.value.message


async def test_reopening_a_migrated_schema_applies_nothing(
    pg_store: PostgresStore, pg_store_factory: PgStoreFactory
) -> None:
    ids = await submit(pg_store, [JobSpec(kind="noop")])

    again = await pg_store_factory()

    assert await again.schema_version() == latest_version()
    assert await again.get("default", ids[0]) is not None


async def test_an_unreachable_server_gives_unavailable_naming_host_and_port_quickly() -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/test", connect_timeout=2)
    started = time.monotonic()

    with pytest.raises(Unavailable) as raised:
        await store.open()

    assert time.monotonic() - started < 5
    assert "127.0.0.1:1" in raised.value.message
    assert "connecting" in raised.value.message
    await store.close()


async def test_a_closed_store_gives_unavailable(pg_store: PostgresStore) -> None:
    await pg_store.close()

    with pytest.raises(Unavailable):
        await pg_store.ping()


async def test_a_payload_postgresql_cannot_hold_is_a_validation_error(
    pg_store: PostgresStore,
) -> None:
    with pytest.raises(ValidationError):
        await submit(pg_store, [JobSpec(kind="noop", payload={"text": "nul \u0000 inside"})])


async def test_nested_json_and_ids_round_trip_unchanged(pg_store: PostgresStore) -> None:
    payload = {"rows": [[1, 2], [3, [4, 5]]], "empty": [], "s": "ñ"}
    [job_id] = await submit(pg_store, [JobSpec(kind="noop", payload=payload)])

    job = await pg_store.get("default", job_id)

    assert job is not None
    assert job.id == job_id
    assert job.payload == payload


async def test_concurrent_claimers_on_two_servers_claim_each_job_exactly_once(
    pg_store_factory: PgStoreFactory,
) -> None:
    servers = [await pg_store_factory(max_size=4) for _ in range(2)]
    specs = [JobSpec(kind="noop", priority=i % 3) for i in range(2_000)]
    for start in range(0, len(specs), 500):
        await submit(servers[0], specs[start : start + 500])
    claimed: list[str] = []

    async def claim_loop(store: PostgresStore, worker: str) -> None:
        while jobs := await store.claim(
            ClaimParams(worker_id=worker, limit=37, lease_s=60, now=NOW)
        ):
            claimed.extend(job.id for job in jobs)

    await asyncio.gather(
        *(claim_loop(servers[i % 2], f"w{i}") for i in range(4)),
    )

    assert len(claimed) == 2_000
    assert len(set(claimed)) == 2_000


async def test_the_concurrency_limit_holds_with_concurrent_claimers(
    pg_store_factory: PgStoreFactory, pg_admin: asyncpg.Connection, pg_schema: str
) -> None:
    limit = 3
    servers = [await pg_store_factory(max_size=4) for _ in range(2)]
    await submit(
        servers[0],
        [JobSpec(kind="noop", concurrency_key="api", concurrency_limit=limit) for _ in range(120)]
        + [JobSpec(kind="noop") for _ in range(120)],
    )
    running: set[str] = set()
    most_running = 0
    done = 0

    async def worker_loop(store: PostgresStore, worker: str) -> None:
        nonlocal most_running, done
        idle = 0
        while idle < 50:
            jobs = await store.claim(ClaimParams(worker_id=worker, limit=5, lease_s=60, now=NOW))
            keyed = [job for job in jobs if job.concurrency_key == "api"]
            running.update(job.id for job in keyed)
            most_running = max(most_running, len(running))
            in_db = await pg_admin_count()
            assert in_db <= limit
            if not jobs:
                idle += 1
                await asyncio.sleep(0)
                continue
            idle = 0
            await asyncio.sleep(0.001)  # hold the jobs a moment, as a worker would
            running.difference_update(job.id for job in keyed)
            await store.complete_many(
                CompleteParams(
                    [Completion(job.id, job.attempts, JobState.SUCCEEDED) for job in jobs],
                    now=NOW,
                )
            )
            done += len(jobs)

    lock = asyncio.Lock()

    async def pg_admin_count() -> int:
        async with lock:  # one connection: one query at a time
            count: int = await pg_admin.fetchval(
                f"SELECT count(*) FROM {pg_schema}.jobs"
                " WHERE state = 'running' AND concurrency_key = 'api'"
            )
            return count

    await asyncio.gather(*(worker_loop(servers[i % 2], f"w{i}") for i in range(4)))

    assert done == 240
    assert 1 <= most_running <= limit


async def test_a_claim_walks_the_queued_index_in_order_even_without_statistics(
    pg_store: PostgresStore, pg_admin: asyncpg.Connection, pg_schema: str
) -> None:
    """A fresh, never-analyzed table is where the planner prefers to fetch and sort every
    queued job: the claim function's planner settings must still give the ordered
    partial-index scan and update the locked rows by TID. auto_explain shows the plans of the
    statements inside ``faena_claim`` as notices."""
    await submit(pg_store, [JobSpec(kind="noop") for _ in range(2_000)])
    plans: list[str] = []
    pg_admin.add_log_listener(lambda _conn, message: plans.append(str(message.message)))
    await pg_admin.execute(
        f"SET search_path = {pg_schema}; LOAD 'auto_explain';"
        " SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on;"
        " SET auto_explain.log_level = notice; SET client_min_messages = notice"
    )
    rows = await pg_admin.fetch(
        "SELECT id FROM faena_claim(100, NULL, NULL, '{}', 'w1', $1, 30, 1000, 8)", NOW
    )
    await pg_admin.execute("RESET auto_explain.log_min_duration")

    assert len(rows) == 100
    candidates = next(p for p in plans if "ORDER BY priority DESC, id" in p and "LockRows" in p)
    assert "Index Scan using jobs_queued_idx" in candidates
    assert "Sort" not in candidates
    claimed = next(p for p in plans if "Update on jobs" in p and "ctid = ANY" in p)
    assert "Tid Scan" in claimed


async def test_submitting_jobs_notifies_listeners(
    pg_store: PostgresStore, pg_admin: asyncpg.Connection
) -> None:
    """One notification on the store's channel, from its origin, one line per job."""
    heard: asyncio.Queue[str] = asyncio.Queue()
    await pg_admin.add_listener(pg_store.channel, lambda *args: heard.put_nowait(args[3]))

    [job_id] = await submit(pg_store, [JobSpec(kind="noop", tenant="acme")])

    payload = await asyncio.wait_for(heard.get(), 5)
    assert payload == f"faena1 {pg_store.origin}\nqueued 0 acme {job_id}"


def test_each_schema_has_its_own_channel() -> None:
    assert PostgresStore("postgresql://x/db").channel == NOTIFY_CHANNEL
    assert PostgresStore("postgresql://x/db", schema="s1").channel == f"{NOTIFY_CHANNEL}_s1"
    long = PostgresStore("postgresql://x/db", schema="s" * 63).channel
    assert long.startswith(NOTIFY_CHANNEL) and len(long) <= 63
