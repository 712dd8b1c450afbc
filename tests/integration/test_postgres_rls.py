"""Row-level security on PostgreSQL (migration 0008): under the ``faena_tenant`` role with
``faena.tenant`` set, a query that forgets its tenant filter still sees and writes only that
tenant's rows. The test database role is a superuser, which bypasses RLS, so every check here
switches role as the store does (``SET LOCAL ROLE faena_tenant``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from tests.conftest import POSTGRES_URL

from faena.adapters.postgres.store import PostgresStore
from faena.adapters.postgres.tenancy import begin_as_tenant
from faena.domain.audit import AuditEntry
from faena.domain.ids import new_ids
from faena.domain.jobs import JobSpec
from faena.ports.store import ListParams, SubmitParams


@pytest.fixture
async def conn(pg_store: PostgresStore, pg_schema: str) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection on the store's schema, with jobs of tenants a and b stored."""
    specs = [JobSpec(kind="noop", tenant=t) for t in ("a", "a", "b")]
    await pg_store.submit_many(SubmitParams(specs, new_ids(3), now=1.0))
    raw = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": pg_schema})
    try:
        yield raw
    finally:
        await raw.close()


async def as_tenant(conn: asyncpg.Connection, tenant: str) -> None:
    await conn.execute(begin_as_tenant(tenant))


async def test_an_unfiltered_query_sees_only_the_tenants_rows(conn: asyncpg.Connection) -> None:
    await as_tenant(conn, "a")
    tenants = await conn.fetch("SELECT tenant FROM jobs")  # no WHERE tenant = …
    await conn.execute("COMMIT")
    assert sorted(r[0] for r in tenants) == ["a", "a"]


async def test_without_a_tenant_set_the_role_sees_nothing(conn: asyncpg.Connection) -> None:
    await conn.execute("BEGIN; SET LOCAL ROLE faena_tenant")
    assert await conn.fetchval("SELECT count(*) FROM jobs") == 0
    assert await conn.fetchval("SELECT count(*) FROM tenants") == 0
    await conn.execute("COMMIT")


async def test_the_role_cannot_write_another_tenants_rows(conn: asyncpg.Connection) -> None:
    await as_tenant(conn, "a")
    assert await conn.execute("UPDATE jobs SET priority = 9 WHERE tenant = 'b'") == "UPDATE 0"
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await conn.execute(
            "INSERT INTO api_keys (id, tenant, name, prefix, key_hash, scopes, created_at)"
            " VALUES ('k', 'b', 'n', 'fk_x', 'h', '{admin}', 1)"
        )
    await conn.execute("ROLLBACK")


async def test_the_audit_log_is_append_only_for_the_role(
    pg_store: PostgresStore, conn: asyncpg.Connection
) -> None:
    await pg_store.append_audit([AuditEntry(tenant="a", action="x", id="e1", at=1.0)])
    await as_tenant(conn, "a")
    assert await conn.fetchval("SELECT count(*) FROM audit_log") == 1
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await conn.execute("DELETE FROM audit_log")
    await conn.execute("ROLLBACK")


async def test_the_store_reads_under_the_role(pg_store: PostgresStore) -> None:
    await pg_store.submit_many(SubmitParams([JobSpec("noop", tenant="o'brien")], ["j1"], 1.0))
    page = await pg_store.list_jobs(ListParams(tenant="o'brien"))  # a quote in the literal
    assert [j.id for j in page.jobs] == ["j1"]
    async with pg_store._tenant_connection("o'brien", "checking") as conn:
        who = await conn.fetchrow("SELECT current_user, current_setting('faena.tenant')")
    assert tuple(who) == ("faena_tenant", "o'brien")
    async with pg_store._connection("checking") as conn:  # released back as the owner
        assert await conn.fetchval("SELECT current_user") != "faena_tenant"


async def test_every_table_with_a_tenant_column_has_row_level_security(
    pg_store: PostgresStore, conn: asyncpg.Connection, pg_schema: str
) -> None:
    rows = await conn.fetch(
        """
        SELECT c.relname, c.relrowsecurity,
               EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid) AS has_policy
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relkind = 'r'
          AND (EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                       AND a.attname = 'tenant' AND NOT a.attisdropped)
               OR c.relname = 'tenants')
        """,
        pg_schema,
    )
    unprotected = sorted(r[0] for r in rows if not (r[1] and r[2]))
    assert unprotected == [], f"tables with a tenant column but no RLS policy: {unprotected}"
