"""Versioned schema migrations: plain ``.sql`` files shipped in ``migrations/``.

``NNNN_name.sql`` is version ``NNNN``. Pending versions are applied in order, in one transaction,
and recorded in ``schema_migrations``; a database newer than the code is refused, never touched.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass
from importlib import resources

from faena.adapters.sqlite import queries
from faena.adapters.sqlite.connection import transaction
from faena.domain.errors import SchemaError

_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The file split into complete statements (``sqlite3.complete_statement`` knows
        triggers and quoted semicolons), so they run inside the caller's transaction."""
        statements: list[str] = []
        pending = ""
        for line in self.sql.splitlines(keepends=True):
            pending += line
            if sqlite3.complete_statement(pending):
                statements.append(pending.strip())
                pending = ""
        if pending.strip() and not _only_comments(pending):
            raise SchemaError(f"migration {self.name} ends with an incomplete statement")
        return [s for s in statements if not _only_comments(s)]


def available() -> list[Migration]:
    """The migrations shipped with this code, by version."""
    folder = resources.files("faena.adapters.sqlite").joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise SchemaError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return found


def current_version(conn: sqlite3.Connection) -> int:
    conn.execute(queries.CREATE_SCHEMA_MIGRATIONS)
    (version,) = conn.execute(queries.SCHEMA_VERSION).fetchone()
    return int(version)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to the newest known version; return it.

    ``conn`` must be in autocommit mode (``isolation_level=None``). ``BEGIN IMMEDIATE`` takes the
    write lock before the version is read, so two processes opening one new file at once apply
    each migration once.
    """
    migrations = available()
    known = migrations[-1].version if migrations else 0
    with transaction(conn):
        version = current_version(conn)
        if version > known:
            raise SchemaError(
                f"the database schema is version {version} but this faena knows only up to "
                f"version {known}; upgrade faena to open it"
            )
        for migration in migrations[version:]:
            for statement in migration.statements():
                conn.execute(statement)
            conn.execute(queries.RECORD_MIGRATION, (migration.version, time.time()))
    return known


def _only_comments(sql: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in sql.splitlines())
