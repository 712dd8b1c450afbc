"""SQLite-specific behaviour of SqliteStore: the file, its journal, migrations, locking.

What every store must do is in ``tests/contract``; these tests cover what only a file on a
disk shared with other processes can get wrong.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from faena.adapters.sqlite.migrate import available
from faena.adapters.sqlite.store import SqliteStore
from faena.domain.errors import SchemaError, Unavailable
from faena.domain.ids import new_id
from faena.domain.jobs import JobSpec, JobState
from faena.ports.store import ClaimParams, SubmitParams

NOW = 1_700_000_000.0

StoreFactory = Callable[..., Awaitable[SqliteStore]]


@pytest.fixture
async def make_store(tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Opens SqliteStores (default file: ``tmp_path/faena.db``) and closes them all afterwards."""
    stores: list[SqliteStore] = []

    async def make(path: Path | None = None, **options: Any) -> SqliteStore:
        store = SqliteStore(path or tmp_path / "faena.db", **options)
        stores.append(store)
        await store.open()
        return store

    try:
        yield make
    finally:
        for store in stores:
            await store.close()


def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def submit(store: SqliteStore, spec: JobSpec) -> str:
    (submitted,) = await store.submit_many(SubmitParams([spec], [new_id()], NOW))
    return submitted.job.id


async def test_jobs_survive_close_and_reopen(make_store: StoreFactory, tmp_path: Path) -> None:
    """Everything committed is on disk: a new store on the file reads it back."""
    first = await make_store()
    job_id = await submit(first, JobSpec(kind="noop", payload={"n": 1}, labels={"os": "linux"}))
    await first.close()
    again = await make_store()
    job = await again.get("default", job_id)
    assert job is not None
    assert (job.payload, job.labels, job.state) == ({"n": 1}, {"os": "linux"}, JobState.QUEUED)


async def test_open_creates_missing_folders(make_store: StoreFactory, tmp_path: Path) -> None:
    """The database's folder is created on first open."""
    path = tmp_path / "a" / "b" / "faena.db"
    await make_store(path)
    assert path.is_file()


async def test_database_uses_write_ahead_logging(make_store: StoreFactory, tmp_path: Path) -> None:
    """The file is in WAL mode, so readers never wait for the writer."""
    await make_store()
    assert query(tmp_path / "faena.db", "PRAGMA journal_mode") == [("wal",)]


async def test_open_records_every_shipped_migration(
    make_store: StoreFactory, tmp_path: Path
) -> None:
    """schema_migrations lists each version once, and schema_version is the newest."""
    store = await make_store()
    versions = [m.version for m in available()]
    rows = query(tmp_path / "faena.db", "SELECT version FROM schema_migrations ORDER BY version")
    assert [v for (v,) in rows] == versions
    assert await store.schema_version() == versions[-1]


async def test_reopening_applies_no_migration_twice(
    make_store: StoreFactory, tmp_path: Path
) -> None:
    """Two stores on one file, opened one after the other, leave one row per version."""
    await make_store()
    await make_store()
    rows = query(tmp_path / "faena.db", "SELECT count(*) FROM schema_migrations")
    assert rows == [(len(available()),)]


async def test_newer_schema_is_refused_naming_both_versions(
    make_store: StoreFactory, tmp_path: Path
) -> None:
    """A database migrated by a newer faena is not opened, and the error says why."""
    await (await make_store()).close()
    newer = len(available()) + 1
    conn = sqlite3.connect(tmp_path / "faena.db")
    with conn:
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (newer, NOW))
    conn.close()
    with pytest.raises(SchemaError) as caught:
        await make_store()
    assert f"version {newer}" in caught.value.message
    assert f"version {newer - 1}" in caught.value.message


async def test_migrations_ship_inside_the_package() -> None:
    """The .sql files are package data, numbered from 0001."""
    folder = resources.files("faena.adapters.sqlite").joinpath("migrations")
    assert folder.joinpath("0001_init.sql").is_file()
    assert available()[0].version == 1


async def test_a_locked_database_is_unavailable(make_store: StoreFactory, tmp_path: Path) -> None:
    """When another process holds the write lock past the busy timeout: Unavailable."""
    store = await make_store(busy_timeout_ms=50)
    other = sqlite3.connect(tmp_path / "faena.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(Unavailable, match="locked"):
            await submit(store, JobSpec(kind="noop"))
    finally:
        other.execute("ROLLBACK")
        other.close()
    await submit(store, JobSpec(kind="noop"))  # the store recovers once the lock is gone


async def test_reads_continue_while_another_process_writes(
    make_store: StoreFactory, tmp_path: Path
) -> None:
    """WAL: a write lock held elsewhere does not block reads."""
    store = await make_store(busy_timeout_ms=50)
    job_id = await submit(store, JobSpec(kind="noop"))
    other = sqlite3.connect(tmp_path / "faena.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        assert await store.get("default", job_id) is not None
    finally:
        other.execute("ROLLBACK")
        other.close()


async def test_a_path_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    """A directory where the file should be: Unavailable, and nothing is left running."""
    store = SqliteStore(tmp_path)
    with pytest.raises(Unavailable):
        await store.open()
    await store.close()


async def test_a_closed_store_is_unavailable(make_store: StoreFactory) -> None:
    """Calls after close fail with Unavailable rather than a driver error."""
    store = await make_store()
    await store.close()
    with pytest.raises(Unavailable):
        await store.ping()
    with pytest.raises(Unavailable):
        await store.claim(ClaimParams(worker_id="w", limit=1, lease_s=1, now=NOW))


async def test_closing_twice_is_harmless(make_store: StoreFactory) -> None:
    """close() is idempotent."""
    store = await make_store()
    await store.close()
    await store.close()


def test_unknown_synchronous_mode_is_refused(tmp_path: Path) -> None:
    """synchronous is interpolated into a PRAGMA: only SQLite's own modes are accepted."""
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStore(tmp_path / "x.db", synchronous="NORMAL; DROP TABLE jobs")
