"""Row-level security on PostgreSQL: run a tenant's API reads and writes as the ``faena_tenant``
role with ``faena.tenant`` set, so the policies of migration 0008 hide every other tenant's
rows even from a query that forgot its ``WHERE tenant = $1``.

The switch is one round trip: ``BEGIN; SET LOCAL ROLE …; SELECT set_config(…)`` is sent as one
simple-protocol query (the tenant inlined as a quoted literal), and the transaction ends with
``COMMIT``. Both settings are transaction-local, so a pooled connection is back to the owner
role the moment it is released.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from faena.adapters.postgres.migrate import quote_ident

TENANT_ROLE = "faena_tenant"
TENANT_SETTING = "faena.tenant"


def quote_literal(value: str) -> str:
    """``value`` as a SQL string literal (standard_conforming_strings is on since 9.1)."""
    if "\x00" in value:
        raise ValueError("a tenant name cannot contain NUL")
    return "'" + value.replace("'", "''") + "'"


def begin_as_tenant(tenant: str) -> str:
    return (
        f"BEGIN; SET LOCAL ROLE {TENANT_ROLE}; "
        f"SELECT set_config('{TENANT_SETTING}', {quote_literal(tenant)}, true)"
    )


@asynccontextmanager
async def as_tenant(conn: Any, tenant: str) -> AsyncIterator[Any]:
    """A transaction on ``conn`` in which only ``tenant``'s rows exist."""
    await conn.execute(begin_as_tenant(tenant))
    try:
        yield conn
    except BaseException:
        if not conn.is_closed():
            with suppress(Exception):
                await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")


# The role and its rights on the current schema, as migration 0008 sets them up; idempotent.
# A restore runs it again: pg_restore --no-acl does not carry grants between databases.
GRANT_TENANT_ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'faena_tenant') THEN
        BEGIN
            CREATE ROLE faena_tenant NOLOGIN NOINHERIT;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    IF NOT pg_has_role(current_user, 'faena_tenant', 'MEMBER') THEN
        EXECUTE format('GRANT faena_tenant TO %I', current_user);
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO faena_tenant', current_schema());
    EXECUTE format(
        'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO faena_tenant',
        current_schema());
    EXECUTE format(
        'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO faena_tenant', current_schema());
    EXECUTE format(
        'ALTER DEFAULT PRIVILEGES IN SCHEMA %I '
        'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO faena_tenant', current_schema());
    EXECUTE format(
        'ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO faena_tenant',
        current_schema());
    IF to_regclass(format('%I.audit_log', current_schema())) IS NOT NULL THEN
        EXECUTE format('REVOKE UPDATE, DELETE ON %I.audit_log FROM faena_tenant', current_schema());
    END IF;
END
$$"""


async def grant_tenant_role(conn: Any, schema: str) -> None:
    """Give ``faena_tenant`` its rights on ``schema`` (after a restore)."""
    await conn.execute("SELECT set_config('search_path', $1, false)", quote_ident(schema))
    await conn.execute(GRANT_TENANT_ROLE)
