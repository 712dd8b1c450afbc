"""Fixtures for tests that talk to a real PostgreSQL (``FAENA_TEST_POSTGRES_URL``).

Each test gets its own schema, dropped afterwards; stores made with ``pg_store_factory`` live in
it and are closed at teardown. Unreachable PostgreSQL: skipped locally, a failure under CI=true.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from tests.conftest import POSTGRES_URL, require_service

from faena.adapters.postgres.store import PostgresStore

PgStoreFactory = Callable[..., Awaitable[PostgresStore]]


@pytest.fixture
async def pg_admin() -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the test database, outside any faena schema."""
    try:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        require_service("PostgreSQL", error)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def pg_schema(pg_admin: asyncpg.Connection) -> AsyncIterator[str]:
    """A fresh schema name; whatever a test creates in it is dropped afterwards."""
    schema = f"faena_it_{uuid.uuid4().hex[:12]}"
    try:
        yield schema
    finally:
        await pg_admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
async def pg_store_factory(pg_schema: str) -> AsyncIterator[PgStoreFactory]:
    """Opens stores on this test's schema (unopened with ``open=False``); closes them all."""
    stores: list[PostgresStore] = []

    async def make(*, open: bool = True, **options: Any) -> PostgresStore:
        options.setdefault("schema", pg_schema)
        store = PostgresStore(POSTGRES_URL, **options)
        stores.append(store)
        if open:
            await store.open()
        return store

    try:
        yield make
    finally:
        for store in stores:
            await store.close()


@pytest.fixture
async def pg_store(pg_store_factory: PgStoreFactory) -> PostgresStore:
    return await pg_store_factory()
