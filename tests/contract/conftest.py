"""The contract suite runs every test in this folder against every Store adapter.

Each backend is one parameter of the ``store`` fixture; a new adapter joins by adding a factory
to ``BACKENDS``. Each test gets a fresh, migrated, empty store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from faena.ports.store import JobStore


async def _memory(tmp_path: Path) -> JobStore:
    from faena.adapters.memory.store import MemoryStore

    return MemoryStore()


async def _sqlite(tmp_path: Path) -> JobStore:
    from faena.adapters.sqlite.store import SqliteStore

    return SqliteStore(tmp_path / "faena.db")


BACKENDS = {"memory": _memory, "sqlite": _sqlite}


# -- postgres (owned by the PostgreSQL adapter) ---------------------------------------------
# One schema per test: the store creates and migrates it (``schema=`` sets ``search_path`` on
# every pooled connection) and the store's close() drops it. Unreachable: skip, or fail in CI.
_postgres_probe: list[BaseException | None] = []  # probed once per session: the error, or None


async def _postgres(tmp_path: Path) -> JobStore:
    import uuid

    import asyncpg

    from faena.adapters.postgres.store import PostgresStore
    from tests.conftest import POSTGRES_URL, require_service

    if not _postgres_probe:
        try:
            probe = await asyncpg.connect(POSTGRES_URL, timeout=5)
            await probe.close()
            _postgres_probe.append(None)
        except (OSError, TimeoutError, asyncpg.PostgresError) as error:
            _postgres_probe.append(error)
    if _postgres_probe[0] is not None:
        require_service("PostgreSQL", _postgres_probe[0])
    schema = f"faena_test_{uuid.uuid4().hex[:12]}"

    class _SchemaPerTestStore(PostgresStore):
        async def close(self) -> None:
            conn = await asyncpg.connect(POSTGRES_URL)
            try:
                await super().close()
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            finally:
                await conn.close()

    return _SchemaPerTestStore(POSTGRES_URL, schema=schema, min_size=1, max_size=4)


BACKENDS["postgres"] = _postgres
# -- end postgres ---------------------------------------------------------------------------


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStore]:
    store = await BACKENDS[request.param](tmp_path)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
