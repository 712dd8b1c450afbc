"""Backup and restore of the PostgreSQL store with ``pg_dump`` / ``pg_restore``.

Backup: one ``REPEATABLE READ`` transaction exports a snapshot and counts every table of faena's
schema in it; ``pg_dump -Fc --snapshot`` dumps that same snapshot (servers keep running), so the
counts are exactly what the archive must hold. The archive is then verified: ``pg_restore
--list`` must show every table's data, and the archive's data is read back in full
(``pg_restore --data-only -f -``) and its rows counted against the snapshot. A manifest next to
the file (``FILE.manifest.json``) records the counts, the schema version and the archive's
SHA-256. The files appear only once verified.

Restore: the archive (and its manifest, when present) is checked before the database is touched,
then ``pg_restore --clean --if-exists --single-transaction`` replaces faena's objects in one
transaction (all or nothing) and the tables are counted again. faena's schema itself is left in
place (created if missing), so restoring into ``public`` never drops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from faena.adapters.postgres.errors import server_address, translated
from faena.adapters.postgres.migrate import latest_version, quote_ident
from faena.adapters.postgres.tenancy import grant_tenant_role
from faena.domain.errors import (
    Conflict,
    NotFound,
    SchemaError,
    Unavailable,
    ValidationError,
)
from faena.ports.backup import BackupReport

PG_DUMP_HEADER = b"PGDMP"
SQLITE_HEADER = b"SQLite format 3\x00"
MANIFEST_FORMAT = "faena-backup-manifest/1"
_APPLICATION = "faena-backup"  # not "faena": restore looks for running servers by that name

_FAENA_SCHEMA = """
SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass('schema_migrations')"""
_TABLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY c.relname"""
_SERVERS = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'faena' AND pid <> pg_backend_pid()"""


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".manifest.json")


class PostgresBackup:
    """:class:`~faena.ports.backup.StoreBackup` for faena's schema in the database at ``dsn``.

    ``schema``: where faena's tables are (as ``PostgresStore(schema=...)``); by default the
    schema that holds ``schema_migrations`` on the connection's ``search_path``.
    """

    def __init__(
        self, dsn: str, *, schema: str | None = None, connect_timeout: float = 10.0
    ) -> None:
        self._dsn = dsn
        self._schema = schema
        self._connect_timeout = connect_timeout
        self._address = server_address(dsn)
        self._libpq_dsn, self._libpq_env = libpq_dsn(dsn)

    # -- backup ----------------------------------------------------------------------------

    async def backup(self, path: Path, *, overwrite: bool = False) -> BackupReport:
        started = time.perf_counter()
        path = Path(path)
        pg_dump = _tool("pg_dump")
        if path.exists() and not overwrite:
            raise Conflict(f"{path} already exists; pass --force to overwrite it")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        manifest_tmp = manifest_path(tmp)
        try:
            async with (
                self._connect("starting the backup") as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
                schema = await self._faena_schema(conn)
                tables = await _count_tables(conn, schema)
                version = await conn.fetchval(
                    f"SELECT max(version) FROM {quote_ident(schema)}.schema_migrations"
                )
                await _run(
                    pg_dump,
                    "--format=custom",
                    f"--file={tmp}",
                    f"--snapshot={snapshot}",
                    f"--schema={schema}",
                    "--no-password",
                    f"--dbname={self._libpq_dsn}",
                    env=self._libpq_env,
                    doing="dumping the database",
                )
            checks = await _verify_archive(tmp, schema, tables)
            digest = _sha256(tmp)
            manifest = {
                "format": MANIFEST_FORMAT,
                "backend": "postgresql",
                "schema": schema,
                "schema_version": version,
                "created_at": time.time(),
                "tables": tables,
                "size_bytes": tmp.stat().st_size,
                "sha256": digest,
            }
            manifest_tmp.write_text(json.dumps(manifest, indent=2) + "\n")
            for file in (tmp, manifest_tmp):
                _fsync(file)
            os.replace(tmp, path)
            os.replace(manifest_tmp, manifest_path(path))
            _fsync(path.parent)
        finally:
            for leftover in (tmp, manifest_tmp):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
        return BackupReport(
            path=path,
            size_bytes=path.stat().st_size,
            tables=tables,
            checks=checks,
            seconds=time.perf_counter() - started,
            extra_files=(manifest_path(path),),
        )

    # -- restore ---------------------------------------------------------------------------

    async def restore(self, path: Path, *, force: bool = False) -> BackupReport:
        started = time.perf_counter()
        path = Path(path)
        pg_restore = _tool("pg_restore")
        schema, entries, expected, checks = await _check_archive(path)
        async with self._connect("preparing the restore") as conn:
            servers = await conn.fetchval(_SERVERS)
            if servers:
                raise Conflict(
                    f"{servers} faena server connection(s) are open on this database "
                    f"({self._address}); stop every faena server before restoring"
                )
            if not force:
                await _refuse_if_not_empty(conn, schema)
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        with tempfile.TemporaryDirectory(prefix="faena-restore-") as folder:
            # Every entry but the schema itself: --clean must not drop (and lose) the schema.
            use_list = Path(folder) / "toc.list"
            use_list.write_text("\n".join(e for e in entries if not _is_schema_entry(e)) + "\n")
            await _run(
                pg_restore,
                "--clean",
                "--if-exists",
                "--single-transaction",
                "--exit-on-error",
                "--no-owner",
                "--no-acl",
                f"--use-list={use_list}",
                "--no-password",
                f"--dbname={self._libpq_dsn}",
                str(path),
                env=self._libpq_env,
                doing="restoring the database",
            )
        async with self._connect("checking the restored database") as conn:
            restored = await _count_tables(conn, schema)
            # --no-acl left the row-level security role without its rights (migration 0008).
            await grant_tenant_role(conn, schema)
        restored = {t: n for t, n in restored.items() if t in expected}
        if restored != expected:
            differ = sorted(t for t in expected if expected[t] != restored.get(t))
            raise ValidationError(
                "the restored database does not hold the backup's rows "
                f"(tables: {', '.join(differ)})"
            )
        return BackupReport(
            path=path,
            size_bytes=path.stat().st_size,
            tables=expected,
            checks=(*checks, f"row counts match in {len(expected)} tables after the restore"),
            seconds=time.perf_counter() - started,
        )

    # -- helpers ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _connect(self, doing: str) -> AsyncIterator[Any]:
        settings = {"application_name": _APPLICATION}
        if self._schema is not None:
            settings["search_path"] = self._schema
        with translated(self._address, doing):
            conn = await asyncpg.connect(
                self._dsn, timeout=self._connect_timeout, server_settings=settings
            )
            try:
                yield conn
            finally:
                await conn.close()

    async def _faena_schema(self, conn: Any) -> str:
        schema: str | None = await conn.fetchval(_FAENA_SCHEMA)
        if schema is None:
            raise NotFound(
                f"no faena tables in the database at {self._address} "
                "(nothing to back up; `faena db migrate` creates them)"
            )
        return schema


def libpq_dsn(dsn: str) -> tuple[str, dict[str, str]]:
    """The URL for libpq tools without its password (kept out of the process list), and the
    environment that carries it instead (``PGPASSWORD``)."""
    env = dict(os.environ)
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn, env
    env["PGPASSWORD"] = parts.password
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.netloc.rsplit("@", 1)[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}")), env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise Unavailable(
            f"{name} not found on PATH: install the PostgreSQL client tools "
            "(Debian/Ubuntu: apt install postgresql-client)"
        )
    return found


async def _run(*argv: str, env: dict[str, str], doing: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await proc.communicate()
    if proc.returncode != 0:
        raise Unavailable(f"{Path(argv[0]).name} failed while {doing}: {_first_line(stderr)}")


def _first_line(stderr: bytes) -> str:
    for line in stderr.decode(errors="replace").splitlines():
        text = line.strip()
        if text:
            return text.removeprefix("pg_dump: ").removeprefix("pg_restore: ")
    return "no message"


async def _list_archive(path: Path) -> list[str]:
    """``pg_restore --list``: the archive's table of contents, one entry a line."""
    proc = await asyncio.create_subprocess_exec(
        _tool("pg_restore"),
        "--list",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await proc.communicate()
    if proc.returncode != 0:
        raise ValidationError(f"{path} is not a readable pg_dump archive: {_first_line(stderr)}")
    return [line for line in stdout.decode().splitlines() if line and not line.startswith(";")]


def _table_data(entries: list[str]) -> set[tuple[str, str]]:
    """(schema, table) of every ``TABLE DATA`` entry of a table of contents."""
    found: set[tuple[str, str]] = set()
    for entry in entries:
        words = entry.split()
        if len(words) >= 7 and words[3:5] == ["TABLE", "DATA"]:
            found.add((words[5], words[6]))
    return found


def _is_schema_entry(entry: str) -> bool:
    words = entry.split()
    return len(words) >= 4 and (words[3] == "SCHEMA" or words[3:6] == ["COMMENT", "-", "SCHEMA"])


async def _archive_rows(path: Path) -> dict[str, int]:
    """Rows per table in the archive, by reading all its data back (every block decompressed)."""
    proc = await asyncio.create_subprocess_exec(
        _tool("pg_restore"),
        "--data-only",
        "--file=-",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=2**24,
    )
    assert proc.stdout is not None and proc.stderr is not None
    counts: dict[str, int] = {}
    table: str | None = None
    async for line in proc.stdout:
        if table is None:
            if line.startswith(b"COPY ") and line.rstrip().endswith(b"FROM stdin;"):
                table = line.split()[1].decode().rsplit(".", 1)[-1].strip('"')
                counts[table] = 0
        elif line == b"\\.\n":
            table = None
        else:
            counts[table] += 1
    stderr = await proc.stderr.read()
    if await proc.wait() != 0:
        raise ValidationError(f"{path} is damaged: {_first_line(stderr)}")
    return counts


async def _verify_archive(path: Path, schema: str, tables: dict[str, int]) -> tuple[str, ...]:
    entries = await _list_archive(path)
    listed = _table_data(entries)
    missing = sorted(t for t in tables if (schema, t) not in listed)
    if missing:
        raise ValidationError(f"the archive lacks the data of {', '.join(missing)}")
    rows = await _archive_rows(path)
    rows = {t: rows.get(t, 0) for t in tables}
    if rows != tables:
        differ = sorted(t for t in tables if rows[t] != tables[t])
        raise ValidationError(
            f"the archive's rows differ from the database's in {', '.join(differ)}"
        )
    return (
        f"pg_restore --list shows the data of all {len(tables)} tables",
        "all data read back; row counts match the snapshot",
    )


async def _check_archive(path: Path) -> tuple[str, list[str], dict[str, int], tuple[str, ...]]:
    """The schema, table of contents and row counts of the faena archive at ``path``; a clear
    error if it is missing, damaged, not faena's, or newer than this code."""
    manifest = await asyncio.to_thread(_read_manifest, path)
    checks = ["SHA-256 matches the manifest"] if manifest is not None else []
    entries = await _list_archive(path)
    listed = _table_data(entries)
    schemas = {s for s, t in listed if t == "schema_migrations"}
    if len(schemas) != 1:
        raise ValidationError(f"{path} is not a faena backup (no schema_migrations table)")
    schema = schemas.pop()
    checks.append("pg_restore --list reads the archive")
    if manifest is not None:
        expected = {str(t): int(n) for t, n in manifest["tables"].items()}
        version = manifest.get("schema_version")
    else:
        rows = await _archive_rows(path)
        expected = {t: rows.get(t, 0) for s, t in listed if s == schema}
        version = None
        checks.append("all data read back")
    if version is not None and int(version) > latest_version():
        raise SchemaError(
            f"{path} holds schema version {version} but this faena knows only up to version "
            f"{latest_version()}; restore it with a newer faena"
        )
    return schema, entries, expected, tuple(checks)


def _read_manifest(path: Path) -> dict[str, Any] | None:
    """Check the file is a pg_dump archive; its manifest, checked against it, if there is one."""
    if not path.is_file():
        raise NotFound(f"no backup file at {path}")
    with path.open("rb") as f:
        header = f.read(len(SQLITE_HEADER))
    if header == SQLITE_HEADER:
        raise ValidationError(
            f"{path} is a SQLite backup; restore it with a sqlite:/// FAENA_DATABASE_URL"
        )
    if not header.startswith(PG_DUMP_HEADER):
        raise ValidationError(f"{path} is not a pg_dump archive (damaged, or not a faena backup)")
    where = manifest_path(path)
    if not where.is_file():
        return None
    try:
        manifest = json.loads(where.read_text())
    except (OSError, ValueError) as e:
        raise ValidationError(f"cannot read {where}: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ValidationError(f"{where} is not a faena backup manifest")
    if _sha256(path) != manifest.get("sha256"):
        raise ValidationError(
            f"{path} does not match its manifest (SHA-256 differs): damaged or replaced"
        )
    return manifest


async def _refuse_if_not_empty(conn: Any, schema: str) -> None:
    counts = []
    for table in ("jobs", "api_keys"):
        exists = await conn.fetchval("SELECT to_regclass($1)", f"{quote_ident(schema)}.{table}")
        n = 0
        if exists is not None:
            n = await conn.fetchval(f"SELECT count(*) FROM {quote_ident(schema)}.{table}")
        counts.append(n)
    if any(counts):
        raise Conflict(
            f"the database already holds {counts[0]} jobs and {counts[1]} API keys in schema "
            f"{schema}; pass --force to replace them with the backup"
        )


async def _count_tables(conn: Any, schema: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for (table,) in await conn.fetch(_TABLES, schema):
        counts[table] = await conn.fetchval(
            f"SELECT count(*) FROM {quote_ident(schema)}.{quote_ident(table)}"
        )
    return counts


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError):  # a directory cannot be fsynced everywhere
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
