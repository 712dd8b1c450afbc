"""`faena backup` / `faena restore` on SQLite and on a real PostgreSQL.

A backup taken while jobs are being written holds every job committed before it started and
passes its integrity check; a restore brings it back into a store that opens and reads it; a
missing, damaged or foreign file, a store in use and a non-empty store are refused clearly.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from click.testing import CliRunner
from tests.conftest import POSTGRES_URL, require_service

from faena.adapters.postgres.backup import PostgresBackup, manifest_path
from faena.adapters.postgres.store import PostgresStore
from faena.adapters.sqlite.backup import SqliteBackup
from faena.adapters.sqlite.store import SqliteStore
from faena.cli import main
from faena.domain.errors import Conflict, NotFound, Unavailable, ValidationError
from faena.domain.ids import new_id
from faena.domain.jobs import JobSpec, JobState
from faena.ports.backup import StoreBackup
from faena.ports.store import (
    ClaimParams,
    CompleteParams,
    Completion,
    JobStore,
    ListParams,
    SubmitParams,
)

NOW = 1_700_000_000.0
MakeDatabase = Callable[[], Awaitable[str]]


async def submit(store: JobStore, n: int) -> list[str]:
    ids = [new_id() for _ in range(n)]
    specs = [JobSpec(kind="noop", payload={"i": i, "text": "a\nb\\.c"}) for i in range(n)]
    await store.submit_many(SubmitParams(specs, ids, NOW))
    return ids


async def keep_writing(store: JobStore, committed: list[str], stop: asyncio.Event) -> int:
    """Submit, claim and complete jobs until ``stop``; ``committed`` gets each submitted id."""
    rounds = 0
    while not stop.is_set():
        committed.extend(await submit(store, 50))
        jobs = await store.claim(ClaimParams(worker_id="w", limit=25, lease_s=30, now=NOW))
        done = [Completion(j.id, j.attempts, JobState.SUCCEEDED, result={"ok": 1}) for j in jobs]
        await store.complete_many(CompleteParams(done, NOW))
        rounds += 1
        await asyncio.sleep(0)
    return rounds


async def backup_while_writing(store: JobStore, backup: StoreBackup, file: Path) -> list[str]:
    """Back up while a writer runs; the ids committed before the backup started."""
    committed = await submit(store, 2000)
    stop = asyncio.Event()
    writer = asyncio.create_task(keep_writing(store, committed, stop))
    await asyncio.sleep(0.05)  # the writer is well under way
    before = list(committed)
    report = await backup.backup(file)
    stop.set()
    assert await writer > 1
    assert report.jobs >= len(before)
    assert report.path == file and report.size_bytes > 0
    return before


async def all_ids(store: JobStore) -> set[str]:
    ids: set[str] = set()
    cursor = None
    while True:
        page = await store.list_jobs(ListParams(tenant="default", limit=1000, cursor=cursor))
        ids.update(j.id for j in page.jobs)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


async def run_cli(*args: str) -> tuple[int, str]:
    """The CLI in a thread: it runs its own event loop."""

    def invoke() -> tuple[int, str]:
        result = CliRunner().invoke(main, list(args))
        return result.exit_code, result.output

    return await asyncio.to_thread(invoke)


# -- SQLite ----------------------------------------------------------------------------------


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "live.db")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_sqlite_backup_under_writes_restores_every_job_committed_before_it(
    sqlite_store: SqliteStore, tmp_path: Path
) -> None:
    """The copy is one consistent snapshot: integrity ok, every earlier job in it."""
    file = tmp_path / "backup.db"
    before = await backup_while_writing(sqlite_store, SqliteBackup(sqlite_store.path), file)
    with contextlib.closing(sqlite3.connect(file)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    target = tmp_path / "restored" / "faena.db"
    report = await SqliteBackup(target).restore(file)
    restored = SqliteStore(target)
    await restored.open()
    try:
        ids = await all_ids(restored)
        assert set(before) <= ids
        assert len(ids) == report.jobs
        job = await restored.get("default", before[0])
        assert job is not None and job.payload == {"i": 0, "text": "a\nb\\.c"}
    finally:
        await restored.close()


async def test_sqlite_restore_is_refused_while_faena_has_the_database_open(
    sqlite_store: SqliteStore, tmp_path: Path
) -> None:
    """A running faena holds the file: the restore says so and changes nothing."""
    await submit(sqlite_store, 3)
    file = tmp_path / "backup.db"
    await SqliteBackup(sqlite_store.path).backup(file)
    with pytest.raises(Conflict, match="in use"):
        await SqliteBackup(sqlite_store.path).restore(file, force=True)
    assert (await sqlite_store.stats("default")).by_state["queued"] == 3


async def test_sqlite_restore_replaces_a_non_empty_database_only_with_force(
    sqlite_store: SqliteStore, tmp_path: Path
) -> None:
    """Jobs in the target: refused without --force; with it, the target equals the backup."""
    kept = await submit(sqlite_store, 5)
    file = tmp_path / "backup.db"
    await SqliteBackup(sqlite_store.path).backup(file)
    await submit(sqlite_store, 7)
    await sqlite_store.close()
    with pytest.raises(Conflict, match="--force"):
        await SqliteBackup(sqlite_store.path).restore(file)
    await SqliteBackup(sqlite_store.path).restore(file, force=True)
    await sqlite_store.open()
    assert await all_ids(sqlite_store) == set(kept)


async def test_backup_refuses_to_overwrite_a_file_without_force(
    sqlite_store: SqliteStore, tmp_path: Path
) -> None:
    """An existing FILE is kept unless asked; with overwrite it is replaced."""
    file = tmp_path / "backup.db"
    file.write_text("precious")
    with pytest.raises(Conflict, match="already exists"):
        await SqliteBackup(sqlite_store.path).backup(file)
    assert file.read_text() == "precious"
    await SqliteBackup(sqlite_store.path).backup(file, overwrite=True)
    assert file.read_bytes().startswith(b"SQLite format 3")


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (None, "no backup file"),
        (b"not a database at all" * 10, "not a SQLite database"),
        (b"PGDMP" + b"\0" * 100, "PostgreSQL backup"),
    ],
)
async def test_sqlite_restore_of_a_missing_or_foreign_file_is_a_clear_error(
    tmp_path: Path, content: bytes | None, error: str
) -> None:
    file = tmp_path / "backup.db"
    if content is not None:
        file.write_bytes(content)
    with pytest.raises((NotFound, ValidationError), match=error):
        await SqliteBackup(tmp_path / "target.db").restore(file)
    assert not (tmp_path / "target.db").exists() or (tmp_path / "target.db").stat().st_size == 0


async def test_sqlite_restore_of_a_damaged_backup_changes_nothing(
    sqlite_store: SqliteStore, tmp_path: Path
) -> None:
    """A truncated copy fails its check before the target is touched."""
    await submit(sqlite_store, 500)
    file = tmp_path / "backup.db"
    await SqliteBackup(sqlite_store.path).backup(file)
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValidationError, match=r"backup\.db"):
        await SqliteBackup(tmp_path / "target.db").restore(file)
    assert not (tmp_path / "target.db").exists()


async def test_cli_backup_and_restore_print_one_line(tmp_path: Path) -> None:
    """`faena backup` then `faena restore`: one line each; failures one line and exit 1."""
    store = SqliteStore(tmp_path / "live.db")
    await store.open()
    await submit(store, 10)
    await store.close()
    file = tmp_path / "b.db"
    code, out = await run_cli(
        "backup", str(file), "--database-url", f"sqlite:///{tmp_path}/live.db"
    )
    assert code == 0, out
    assert out.count("\n") == 1 and "10 jobs" in out and "integrity ok" in out
    code, out = await run_cli(
        "restore", str(file), "--database-url", f"sqlite:///{tmp_path}/new.db"
    )
    assert code == 0, out
    assert out.count("\n") == 1 and "10 jobs" in out
    code, out = await run_cli(
        "restore", str(file), "--database-url", f"sqlite:///{tmp_path}/new.db"
    )
    assert code == 1 and out.count("\n") == 1 and "--force" in out
    code, out = await run_cli(
        "restore", str(tmp_path / "nope.db"), "--database-url", "sqlite:///x.db"
    )
    assert code == 1 and out == f"faena: no backup file at {tmp_path / 'nope.db'}\n"


# -- PostgreSQL ------------------------------------------------------------------------------


@pytest.fixture
async def pg_databases() -> AsyncIterator[MakeDatabase]:
    """Makes fresh, empty databases (dropped afterwards) and returns their URLs."""
    try:
        admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        require_service("PostgreSQL", error)
    made: list[str] = []

    async def make() -> str:
        name = f"faena_backup_{uuid.uuid4().hex[:10]}"
        await admin.execute(f"CREATE DATABASE {name}")
        made.append(name)
        return urlunsplit(urlsplit(POSTGRES_URL)._replace(path=f"/{name}"))

    try:
        yield make
    finally:
        for name in made:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def open_pg(url: str) -> PostgresStore:
    store = PostgresStore(url, min_size=1, max_size=4)
    await store.open()
    return store


async def test_postgres_backup_under_writes_restores_every_job_committed_before_it(
    pg_databases: MakeDatabase, tmp_path: Path
) -> None:
    """pg_dump of one snapshot while servers write; verified; restores into a new database."""
    source_url, target_url = await pg_databases(), await pg_databases()
    store = await open_pg(source_url)
    file = tmp_path / "faena.dump"
    try:
        before = await backup_while_writing(store, PostgresBackup(source_url), file)
    finally:
        await store.close()
    assert manifest_path(file).is_file()
    report = await PostgresBackup(target_url).restore(file)
    assert any("match" in check for check in report.checks)
    restored = await open_pg(target_url)
    try:
        ids = await all_ids(restored)
        assert set(before) <= ids
        assert len(ids) == report.jobs
        job = await restored.get("default", before[0])
        assert job is not None and job.payload == {"i": 0, "text": "a\nb\\.c"}
        await submit(restored, 1)  # the restored schema takes writes (triggers, identities)
    finally:
        await restored.close()


async def test_postgres_restore_is_refused_while_a_faena_server_is_connected(
    pg_databases: MakeDatabase, tmp_path: Path
) -> None:
    url = await pg_databases()
    store = await open_pg(url)
    try:
        await submit(store, 3)
        file = tmp_path / "faena.dump"
        await PostgresBackup(url).backup(file)
        with pytest.raises(Conflict, match="stop every faena server"):
            await PostgresBackup(url).restore(file, force=True)
    finally:
        await store.close()


async def test_postgres_restore_replaces_a_non_empty_database_only_with_force(
    pg_databases: MakeDatabase, tmp_path: Path
) -> None:
    url = await pg_databases()
    store = await open_pg(url)
    kept = await submit(store, 5)
    file = tmp_path / "faena.dump"
    await PostgresBackup(url).backup(file)
    await submit(store, 7)
    await store.close()
    with pytest.raises(Conflict, match="--force"):
        await PostgresBackup(url).restore(file)
    await PostgresBackup(url).restore(file, force=True)
    store = await open_pg(url)
    try:
        assert await all_ids(store) == set(kept)
    finally:
        await store.close()


async def test_postgres_restore_of_a_damaged_archive_changes_nothing(
    pg_databases: MakeDatabase, tmp_path: Path
) -> None:
    """A damaged archive is refused before the database is touched, manifest or not."""
    source, target = await pg_databases(), await pg_databases()
    store = await open_pg(source)
    await submit(store, 2000)
    await store.close()
    file = tmp_path / "faena.dump"
    await PostgresBackup(source).backup(file)
    data = bytearray(file.read_bytes())
    # Inside the jobs' data: 4 KiB, so that zlib cannot decode it into garbage unnoticed.
    data[len(data) // 2 : len(data) // 2 + 4096] = b"\xff" * 4096
    file.write_bytes(bytes(data))
    with pytest.raises(ValidationError, match="manifest"):
        await PostgresBackup(target).restore(file)
    manifest_path(file).unlink()
    with pytest.raises(ValidationError, match=r"faena\.dump"):
        await PostgresBackup(target).restore(file)
    conn = await asyncpg.connect(target)
    try:
        assert await conn.fetchval("SELECT to_regclass('jobs')") is None
    finally:
        await conn.close()


async def test_postgres_restore_of_a_missing_or_sqlite_file_is_a_clear_error(
    tmp_path: Path,
) -> None:
    backup = PostgresBackup(POSTGRES_URL)
    with pytest.raises(NotFound, match="no backup file"):
        await backup.restore(tmp_path / "nope.dump")
    sqlite_file = tmp_path / "b.db"
    sqlite_file.write_bytes(b"SQLite format 3\x00" + b"\0" * 100)
    with pytest.raises(ValidationError, match="sqlite:///"):
        await backup.restore(sqlite_file)


async def test_a_missing_pg_dump_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(Unavailable, match="pg_dump not found on PATH"):
        await PostgresBackup(POSTGRES_URL).backup(tmp_path / "x.dump")
    assert not (tmp_path / "x.dump").exists()


async def test_cli_postgres_backup_prints_one_line(
    pg_databases: MakeDatabase, tmp_path: Path
) -> None:
    url = await pg_databases()
    store = await open_pg(url)
    await submit(store, 4)
    await store.close()
    file = tmp_path / "faena.dump"
    code, out = await run_cli("backup", str(file), "--database-url", url)
    assert code == 0, out
    assert out.count("\n") == 1 and "4 jobs" in out and "manifest" in out
