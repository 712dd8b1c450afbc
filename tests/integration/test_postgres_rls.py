"""Row-level security on PostgreSQL (migration 0008): under the ``faena_tenant`` role with
``faena.tenant`` set, a query that forgets its tenant filter still sees and writes only that
tenant's rows. The test database role is a superuser, which bypasses RLS, so every check here
switches role as the store does (``SET LOCAL ROLE faena_tenant``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from tests.conftest import POSTGRES_URL

from faena.adapters.postgres.store import PostgresStore
from faena.adapters.postgres.tenancy import begin_as_tenant
from faena.domain.artefacts import Artefact
from faena.domain.audit import AuditEntry
from faena.domain.errors import NotFound
from faena.domain.ids import new_ids
from faena.domain.jobs import JobSpec
from faena.domain.runs import DeliveryState, OutboxEvent, Run, RunState, Schedule, StepRun
from faena.ports.artefacts import CacheKey, ListArtefactsParams, PurgeArtefactsParams
from faena.ports.store import ListParams, SubmitParams
from faena.ports.workflows import CreateRunParams, GetVersionParams, PutWorkflowParams


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


# -- which store operations run under the tenant role (docs/security.md lists them) ----------


class RoleSpy:
    """Records, for each connection the store takes, the role its statements ran as."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self.roles: list[tuple[str, str]] = []  # (what, current_user)
        original = store._connection

        @asynccontextmanager
        async def connection(doing: str) -> AsyncIterator[Any]:
            async with original(doing) as conn:
                yield _Probe(conn, doing, self.roles)

        store._connection = connection  # type: ignore[method-assign]

    def ran_as(self, doing: str) -> set[str]:
        return {user for what, user in self.roles if what == doing}


class _Probe:
    """A pooled connection that notes ``current_user`` before each statement."""

    def __init__(self, conn: Any, doing: str, roles: list[tuple[str, str]]) -> None:
        self._conn, self._doing, self._roles = conn, doing, roles

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._conn, name)
        if name not in {"fetch", "fetchrow", "fetchval", "execute", "executemany"}:
            return attr

        async def call(query: str, *args: Any, **kw: Any) -> Any:
            result = await attr(query, *args, **kw)
            if not query.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
                user = await self._conn.fetchval("SELECT current_user")
                self._roles.append((self._doing, user))
            return result

        return call


def _run(run_id: str, tenant: str, name: str = "flow", **fields: Any) -> Run:
    return Run(
        id=run_id, tenant=tenant, workflow=name, version=1, state=RunState.RUNNING,
        inputs={}, steps=[StepRun(id="a")], created_at=1.0, updated_at=1.0, **fields,
    )  # fmt: skip


async def test_workflow_reads_and_writes_of_one_tenant_run_under_the_role(
    pg_store: PostgresStore,
) -> None:
    spy = RoleSpy(pg_store)
    schedule = Schedule("a", "flow", "0 7 * * *", "UTC", catch_up=False, next_fire_at=2.0)
    put = PutWorkflowParams("a", "flow", {"steps": []}, 1.0, "hook-a", "s", schedule=schedule)
    stored = await pg_store.put_workflow(put)
    assert stored.created
    assert (await pg_store.get_workflow("a", "flow")) is not None
    assert (await pg_store.get_workflow_version(GetVersionParams("a", "flow"))) is not None
    assert (await pg_store.get_workflow_version(GetVersionParams("a", "flow", 1))) is not None
    assert (await pg_store.get_schedule("a", "flow")) is not None
    event = OutboxEvent("run.state", "a", {"state": "running"}, 1.0)
    created = await pg_store.create_run(CreateRunParams(_run("r1", "a"), [event]))
    again = await pg_store.create_run(
        CreateRunParams(_run("r2", "a", idempotency_key="k"), [event])
    )
    same = await pg_store.create_run(CreateRunParams(_run("r3", "a", idempotency_key="k")))
    assert created.created and again.created and not same.created and same.run.id == "r2"
    assert (await pg_store.get_run("a", "r1")) is not None
    for doing in (
        "storing a workflow",
        "reading a workflow",
        "reading a workflow version",
        "reading a schedule",
        "creating a run",
        "reading a run",
    ):
        assert spy.ran_as(doing) == {"faena_tenant"}, doing


async def test_another_tenants_workflow_objects_are_invisible_under_the_role(
    pg_store: PostgresStore,
) -> None:
    put = PutWorkflowParams("a", "flow", {"steps": []}, 1.0, "hook-a2", "s")
    await pg_store.put_workflow(put)
    await pg_store.create_run(CreateRunParams(_run("ra", "a")))
    assert await pg_store.get_workflow("b", "flow") is None
    assert await pg_store.get_workflow_version(GetVersionParams("b", "flow")) is None
    assert await pg_store.get_run("b", "ra") is None
    assert await pg_store.get_schedule("b", "flow") is None


async def test_redriving_a_delivery_runs_under_the_role(
    pg_store: PostgresStore, conn: asyncpg.Connection
) -> None:
    await conn.execute(
        "INSERT INTO webhook_deliveries (id, tenant, subscription_id, event_id, event_type, body,"
        " state, attempts, next_attempt_at, created_at) VALUES"
        " ('d1', 'a', 's1', 1, 'job.state', '{}', 'dead', 5, 1, 1)"
    )
    spy = RoleSpy(pg_store)
    with pytest.raises(NotFound):
        await pg_store.redrive_delivery("b", "d1", 2.0)
    redriven = await pg_store.redrive_delivery("a", "d1", 2.0)
    assert redriven.state is DeliveryState.PENDING and redriven.attempts == 0
    assert spy.ran_as("redriving a delivery") == {"faena_tenant"}


async def test_artefacts_and_the_document_cache_run_under_the_role(
    pg_store: PostgresStore,
) -> None:
    spy = RoleSpy(pg_store)
    artefact = Artefact("art1", "a", "x.pdf", "application/pdf", 3, "ab" * 32, 1.0)
    await pg_store.add_artefact(artefact)
    assert await pg_store.get_artefact("a", "art1") == artefact
    assert await pg_store.get_artefact("b", "art1") is None
    listed = await pg_store.list_artefacts(ListArtefactsParams(tenant="a"))
    assert [x.id for x in listed.artefacts] == ["art1"]
    assert (await pg_store.list_artefacts(ListArtefactsParams(tenant="b"))).artefacts == []
    key = CacheKey("a", "document.text", "ab" * 32, "{}")
    await pg_store.put_cached_result(key, {"text": "hi"}, 1.0)
    assert await pg_store.get_cached_result(key) == {"text": "hi"}
    found = await pg_store.cached_result_for_artefact("a", "art1", "document.text", "{}")
    assert found == ("ab" * 32, {"text": "hi"})
    assert await pg_store.delete_artefact("b", "art1") is None
    assert await pg_store.delete_artefact("a", "art1") == artefact
    for doing in (
        "storing an artefact",
        "reading an artefact",
        "listing artefacts",
        "deleting an artefact",
        "reading the document cache",
        "writing the document cache",
    ):
        assert spy.ran_as(doing) == {"faena_tenant"}, doing
    await pg_store.purge_artefacts(PurgeArtefactsParams(now=2.0))  # retention: every tenant
    roles = spy.ran_as("purging artefacts")
    assert roles and "faena_tenant" not in roles


async def test_the_hot_path_stays_as_the_owner(pg_store: PostgresStore) -> None:
    """Documented in docs/security.md: submit, a job's status read, claim and complete keep one
    round trip each, scoped by their WHERE tenant."""
    spy = RoleSpy(pg_store)
    await pg_store.submit_many(SubmitParams([JobSpec("noop", tenant="a")], ["h1"], 1.0))
    assert await pg_store.get("a", "h1") is not None
    assert await pg_store.get("b", "h1") is None
    for doing in ("submitting jobs", "reading a job"):
        roles = spy.ran_as(doing)
        assert roles and "faena_tenant" not in roles, doing


async def test_a_tenants_worker_listing_runs_under_the_role(pg_store: PostgresStore) -> None:
    from faena.domain.workers import Capacity, WorkerInfo, WorkerKind
    from faena.ports.workers import ListWorkersParams

    def worker(worker_id: str, tenant: str | None) -> WorkerInfo:
        return WorkerInfo(
            worker_id, WorkerKind.REMOTE, frozenset({"noop"}), {}, Capacity(1), "v", "h", "s",
            1.0, 1.0, tenant=tenant,
        )  # fmt: skip

    for w in (worker("a-1", "a"), worker("b-1", "b"), worker("pool", None)):
        await pg_store.save_worker(w)
    spy = RoleSpy(pg_store)
    listed = await pg_store.list_workers(ListWorkersParams(tenant="a"))
    assert [w.id for w in listed] == ["a-1"]  # shared workers: the operator's view only
    operator = await pg_store.list_workers(ListWorkersParams(tenant="default"))
    assert [w.id for w in operator] == ["pool"]
    assert spy.ran_as("listing workers") == {"faena_tenant"}


async def test_creating_keys_and_worker_tokens_runs_under_the_role(pg_store: PostgresStore) -> None:
    from faena.domain.auth import ApiKey
    from faena.domain.workers import WorkerToken

    spy = RoleSpy(pg_store)
    await pg_store.create_api_key(ApiKey("k1", "a", "n", "fk_abcdefgh", "h", ("admin",), 1.0))
    await pg_store.create_worker_token(WorkerToken("t1", "a", "edge", "fw_abcdefgh", "h", 1.0))
    assert [k.id for k in await pg_store.list_api_keys("a")] == ["k1"]
    assert [t.id for t in await pg_store.list_worker_tokens("a")] == ["t1"]
    assert spy.ran_as("creating an API key") == {"faena_tenant"}
    assert spy.ran_as("creating a worker token") == {"faena_tenant"}
    assert [k.id for k in await pg_store.find_api_keys("fk_abcdefgh")] == ["k1"]
    owner = spy.ran_as("finding API keys")  # before the tenant is known: as the owner
    assert owner and "faena_tenant" not in owner
