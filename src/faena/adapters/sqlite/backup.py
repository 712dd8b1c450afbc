"""Backup and restore of the SQLite store: SQLite's online backup API, verified.

Backup reads one snapshot: a read transaction is opened on the live database (WAL lets faena
keep writing meanwhile), every table is counted in it, and ``Connection.backup`` copies the
pages of that same snapshot (SQLite's backup uses the source connection's open transaction).
The copy is switched to a rollback journal, so it is one self-contained file, then checked with
``PRAGMA integrity_check`` and the same counts, and only then renamed into place.

Restore takes the target's lock in exclusive mode first: a running faena holds the file open in
WAL mode, so the switch out of WAL fails at once and the restore is refused; while the restore
runs no faena can open the file. The backup itself is checked before anything is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from faena.adapters.sqlite.migrate import available
from faena.domain.errors import (
    Conflict,
    FaenaError,
    NotFound,
    SchemaError,
    Unavailable,
    ValidationError,
)
from faena.ports.backup import BackupReport

SQLITE_HEADER = b"SQLite format 3\x00"
PG_DUMP_HEADER = b"PGDMP"


class SqliteBackup:
    """:class:`~faena.ports.backup.StoreBackup` for the SQLite database at ``database``."""

    def __init__(self, database: str | Path, *, busy_timeout_ms: int = 5000) -> None:
        self.database = Path(database)
        self._timeout_s = busy_timeout_ms / 1000

    async def backup(self, path: Path, *, overwrite: bool = False) -> BackupReport:
        return await asyncio.to_thread(self._backup, Path(path), overwrite)

    async def restore(self, path: Path, *, force: bool = False) -> BackupReport:
        return await asyncio.to_thread(self._restore, Path(path), force)

    # -- backup ----------------------------------------------------------------------------

    def _backup(self, path: Path, overwrite: bool) -> BackupReport:
        started = time.perf_counter()
        if not self.database.is_file():
            raise NotFound(f"no SQLite database at {self.database}")
        if path.exists() and path.resolve() == self.database.resolve():
            raise ValidationError("the backup file cannot be the database itself")
        if path.exists() and not overwrite:
            raise Conflict(f"{path} already exists; pass --force to overwrite it")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with _errors(f"backing up {self.database}"):
                tables = self._copy_snapshot(tmp)
                checks = _verify(tmp, tables, "the backup")
            _fsync(tmp)
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return BackupReport(
            path=path,
            size_bytes=path.stat().st_size,
            tables=tables,
            checks=checks,
            seconds=time.perf_counter() - started,
        )

    def _copy_snapshot(self, tmp: Path) -> dict[str, int]:
        src = sqlite3.connect(self.database, timeout=self._timeout_s, isolation_level=None)
        try:
            src.execute("PRAGMA query_only = ON")
            src.execute("BEGIN")  # the snapshot: counted here, copied by backup() below
            tables = _count_tables(src)
            if "schema_migrations" not in tables:
                raise ValidationError(f"{self.database} is not a faena database")
            dst = sqlite3.connect(tmp, isolation_level=None)
            try:
                src.backup(dst)
                dst.execute("PRAGMA journal_mode = DELETE").fetchall()  # one file, no -wal
            finally:
                dst.close()
            src.execute("COMMIT")
        finally:
            src.close()
        return tables

    # -- restore ---------------------------------------------------------------------------

    def _restore(self, path: Path, force: bool) -> BackupReport:
        started = time.perf_counter()
        tables = _check_backup_file(path)
        self.database.parent.mkdir(parents=True, exist_ok=True)
        with _errors(f"restoring into {self.database}"):
            target = self._lock_target()
            try:
                if not force:
                    _refuse_if_not_empty(target, self.database)
                src = sqlite3.connect(_read_only_uri(path), uri=True, isolation_level=None)
                try:
                    src.backup(target)
                finally:
                    src.close()
            finally:
                target.close()
            checks = _verify(self.database, tables, "the restored database")
        return BackupReport(
            path=path,
            size_bytes=path.stat().st_size,
            tables=tables,
            checks=("integrity_check ok on the backup", *checks),
            seconds=time.perf_counter() - started,
        )

    def _lock_target(self) -> sqlite3.Connection:
        """A connection holding the database file exclusively (until it is closed)."""
        conn = sqlite3.connect(self.database, timeout=0, isolation_level=None)
        try:
            conn.execute("PRAGMA locking_mode = EXCLUSIVE").fetchall()
            conn.execute("PRAGMA journal_mode = DELETE").fetchall()
            conn.execute("BEGIN EXCLUSIVE")
            conn.execute("COMMIT")  # exclusive locking mode keeps the lock after the commit
        except sqlite3.OperationalError as e:
            conn.close()
            if "locked" in str(e).lower() or "busy" in str(e).lower():
                raise Conflict(
                    f"{self.database} is in use (is faena running?); stop faena before restoring"
                ) from None
            raise
        except BaseException:
            conn.close()
            raise
        return conn


def _check_backup_file(path: Path) -> dict[str, int]:
    """The row counts of a readable, intact faena backup at ``path``; a clear error otherwise."""
    if not path.is_file():
        raise NotFound(f"no backup file at {path}")
    with path.open("rb") as f:
        header = f.read(len(SQLITE_HEADER))
    if header.startswith(PG_DUMP_HEADER):
        raise ValidationError(
            f"{path} is a PostgreSQL backup; restore it with a postgresql:// FAENA_DATABASE_URL"
        )
    if header != SQLITE_HEADER:
        raise ValidationError(f"{path} is not a SQLite database (damaged, or not a faena backup)")
    try:
        conn = sqlite3.connect(_read_only_uri(path), uri=True, isolation_level=None)
        try:
            problems = _integrity_problems(conn)
            if problems:
                raise ValidationError(f"{path} fails SQLite's integrity check: {problems[0]}")
            tables = _count_tables(conn)
            if "schema_migrations" not in tables:
                raise ValidationError(f"{path} is not a faena backup (no schema_migrations)")
            ((version,),) = conn.execute("SELECT max(version) FROM schema_migrations").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise ValidationError(f"{path} cannot be read as a SQLite database: {e}") from None
    known = available()[-1].version
    if version is not None and int(version) > known:
        raise SchemaError(
            f"{path} holds schema version {version} but this faena knows only up to version "
            f"{known}; restore it with a newer faena"
        )
    return tables


def _refuse_if_not_empty(conn: sqlite3.Connection, database: Path) -> None:
    counts = _count_tables(conn)
    jobs, keys = counts.get("jobs", 0), counts.get("api_keys", 0)
    if jobs or keys:
        raise Conflict(
            f"{database} already holds {jobs} jobs and {keys} API keys; "
            "pass --force to replace them with the backup"
        )


def _verify(database: Path, expected: dict[str, int], what: str) -> tuple[str, ...]:
    conn = sqlite3.connect(_read_only_uri(database), uri=True, isolation_level=None)
    try:
        problems = _integrity_problems(conn)
        if problems:
            raise ValidationError(f"{what} fails SQLite's integrity check: {problems[0]}")
        counts = _count_tables(conn)
    finally:
        conn.close()
    if counts != expected:
        differ = sorted(
            t for t in expected.keys() | counts.keys() if expected.get(t) != counts.get(t)
        )
        raise ValidationError(
            f"{what} does not hold the expected rows (tables: {', '.join(differ)})"
        )
    return (f"integrity_check ok on {what}", f"row counts match in {len(counts)} tables")


def _integrity_problems(conn: sqlite3.Connection) -> list[str]:
    rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check").fetchall()]
    return [] if rows == ["ok"] else rows


def _count_tables(conn: sqlite3.Connection) -> dict[str, int]:
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        ).fetchall()
    ]
    counts: dict[str, int] = {}
    for name in names:
        quoted = '"' + name.replace('"', '""') + '"'
        # fetchall: a statement left unfinished would keep a read open on the connection
        ((counts[name],),) = conn.execute(f"SELECT count(*) FROM {quoted}").fetchall()
    return counts


def _read_only_uri(path: Path) -> str:
    return f"file:{quote(str(path.absolute()))}?mode=ro"


@contextlib.contextmanager
def _errors(doing: str) -> Iterator[None]:
    try:
        yield
    except FaenaError:
        raise
    except sqlite3.Error as e:
        raise Unavailable(f"SQLite failed while {doing}: {e}") from None
    except OSError as e:
        raise Unavailable(f"I/O error while {doing}: {e.strerror or e}") from None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can fsync a directory
        _fsync(folder)
