"""Versioned migrations: ``migrations/NNNN_name.sql`` files applied in order, once each.

All pending migrations run in one transaction under a transaction-level advisory lock, so
servers starting together apply them exactly once; a database newer than the code is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import asyncpg

from faena.adapters.postgres import queries as q
from faena.domain.errors import SchemaError

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


@cache
def load_migrations() -> tuple[Migration, ...]:
    """The packaged migrations, by version; versions must be 1, 2, 3... without gaps."""
    found = []
    for entry in resources.files("faena.adapters.postgres.migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise SchemaError("PostgreSQL migrations must be numbered 0001, 0002, ... without gaps")
    return tuple(found)


def latest_version() -> int:
    migrations = load_migrations()
    return migrations[-1].version if migrations else 0


async def migrate(conn: Any, schema: str | None) -> int:
    """Bring the schema up to date on ``conn``; return its version. Safe to run concurrently."""
    async with conn.transaction():
        await conn.execute(q.MIGRATIONS_LOCK, f"faena.migrations:{schema or ''}")
        if schema is not None:
            await conn.execute(q.CREATE_SCHEMA.format(schema=quote_ident(schema)))
        await conn.execute(q.CREATE_MIGRATIONS_TABLE)
        current: int = await conn.fetchval(q.CURRENT_VERSION)
        latest = latest_version()
        if current > latest:
            raise SchemaError(
                f"the database schema is at version {current}, newer than this faena supports "
                f"(version {latest}); upgrade faena before starting it on this database"
            )
        for migration in load_migrations()[current:]:
            try:
                await conn.execute(migration.sql)
            except asyncpg.PostgresError as error:
                raise SchemaError(
                    f"migration {migration.version:04d}_{migration.name} failed: {error}"
                ) from error
            await conn.execute(q.RECORD_MIGRATION, migration.version, migration.name)
        return max(current, latest)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
