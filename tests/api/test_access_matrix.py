"""Every endpoint against every kind of caller, on memory, SQLite and PostgreSQL.

The routes come from the app's own OpenAPI document, so an endpoint added without an entry in
``MATRIX`` fails ``test_every_endpoint_has_a_matrix_entry``. For each entry, with an object of
tenant ``acme`` made for it:

- no key → 401;
- a key of ``acme`` with every scope but the one the route needs (and not ``admin``) → 403
  naming that scope;
- for routes on one object, a key of tenant ``zeta`` with the right scope → 404 (never 403: a
  tenant cannot even learn that another tenant's object exists);
- a key of ``acme`` with only the right scope → the route's success status.

Operator routes (``/v1/tenants``) need an admin key of the ``default`` tenant: an admin of
``acme`` gets 403. Webhook routes authenticate by their token instead of a key.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from faena.bootstrap import Runtime, build_runtime
from faena.config import Settings
from faena.domain.tenants import Tenant
from faena.services.keys import KNOWN_SCOPES
from tests.conftest import POSTGRES_URL, require_service

OPERATOR_KEY = "fk_operator_matrix_key_0123456789"
A, B = "acme", "zeta"
OPERATOR = "operator"  # the pseudo-scope of operator routes
HOOK = "hook"  # the pseudo-scope of routes authenticated by a webhook token
PUBLIC = "public"  # no credentials at all
SLOW_FLOW = {
    "name": "slow",
    "schedule": "0 0 1 1 *",
    "steps": [{"id": "wait", "kind": "sleep", "with": {"seconds": 60}}],
}
NOOP = [{"id": "a", "kind": "noop"}]
INTAKE = {
    "name": "intake",
    "inputs": {"message": "object"},
    "steps": [{"id": "a", "kind": "noop"}],
}


@dataclass
class World:
    runtime: Runtime
    client: httpx.AsyncClient
    keys: dict[tuple[str, frozenset[str]], str] = field(default_factory=dict)

    async def key(self, tenant: str, scopes: frozenset[str]) -> dict[str, str]:
        """A key of ``tenant`` with exactly ``scopes`` (made once, by the service)."""
        found = self.keys.get((tenant, scopes))
        if found is None:
            created = await self.runtime.keys.create(tenant, "matrix", sorted(scopes))
            found = self.keys[(tenant, scopes)] = created.plaintext
        return {"Authorization": f"Bearer {found}"}

    async def admin(self, tenant: str = A) -> dict[str, str]:
        return await self.key(tenant, frozenset({"admin"}))

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """A setup call as tenant acme's admin; its JSON answer."""
        response = await self.client.request(method, path, headers=await self.admin(), **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.text}"
        return response.json() if response.content else None


Setup = Callable[[World], Awaitable[dict[str, Any]]]


async def nothing(w: World) -> dict[str, Any]:
    return {}


async def queued_job(w: World) -> dict[str, Any]:
    job = await w.call("POST", "/v1/jobs", json={"kind": "noop", "delay_s": 3600})
    return {"job_id": job["id"]}


async def cancelled_job(w: World) -> dict[str, Any]:
    found = await queued_job(w)
    await w.call("POST", f"/v1/jobs/{found['job_id']}/cancel")
    return found


async def api_key(w: World) -> dict[str, Any]:
    created = await w.call("POST", "/v1/keys", json={"name": "victim"})
    return {"key_id": created["id"]}


async def workflow(w: World) -> dict[str, Any]:
    await w.call("PUT", "/v1/workflows/slow", json=SLOW_FLOW)
    return {"name": "slow", "version": 1}


async def running_run(w: World) -> dict[str, Any]:
    await workflow(w)
    run = await w.call("POST", "/v1/workflows/slow/runs", json={})
    return {"run_id": run["id"]}


async def cancelled_run(w: World) -> dict[str, Any]:
    found = await running_run(w)
    await w.call("POST", f"/v1/runs/{found['run_id']}/cancel")
    return found


async def hook_token(w: World) -> dict[str, Any]:
    hooked = {"name": "hooked", "webhook": {"enabled": True, "verify": False}, "steps": NOOP}
    await w.call("PUT", "/v1/workflows/hooked", json=hooked)
    path: str = (await w.call("GET", "/v1/workflows/hooked"))["webhook_path"]
    return {"token": path.rsplit("/", 1)[-1]}


async def subscription(w: World) -> dict[str, Any]:
    sub = await w.call("POST", "/v1/subscriptions", json={"url": "http://127.0.0.1:9/hook"})
    return {"subscription_id": sub["id"]}


async def worker_token(w: World) -> dict[str, Any]:
    created = await w.call("POST", "/v1/workers/tokens", json={"name": "w1"})
    return {"token_id": created["id"]}


async def artefact(w: World) -> dict[str, Any]:
    created = await w.call("POST", "/v1/artefacts?name=a.txt", content=b"hello")
    return {"artefact_id": created["id"]}


async def mail_watch(w: World) -> dict[str, Any]:
    await w.call("PUT", "/v1/workflows/intake", json=INTAKE)
    await w.call("PUT", "/v1/secrets/IMAP_PASSWORD", json={"value": "imap-pw"})
    name = f"inbox-{uuid.uuid4().hex[:8]}"
    watch = {
        "name": name,
        "host": "127.0.0.1",
        "port": 9,
        "security": "none",
        "username": "bot",
        "password_secret": "IMAP_PASSWORD",
        "workflow": "intake",
    }
    await w.call("POST", "/v1/mail/watches", json=watch)
    return {"name": name}


async def secret(w: World) -> dict[str, Any]:
    await w.call("PUT", "/v1/secrets/DB_PW", json={"value": "s3cret"})
    return {"name": "DB_PW"}


PROVIDER = {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "models": {"small": {}}}


async def provider(w: World) -> dict[str, Any]:
    await w.call("PUT", "/v1/llm/providers/local", json=PROVIDER)
    return {"name": "local"}


async def policy(w: World) -> dict[str, Any]:
    await provider(w)
    await w.call("PUT", "/v1/llm/policies/default", json={"tiers": ["local/small"]})
    return {"name": "default"}


async def no_llm_provider(w: World) -> dict[str, Any]:
    """Asking without a provider matches workflows by embeddings alone (no LLM to call)."""
    for path in ("/v1/llm/policies/default", "/v1/llm/providers/local"):
        await w.client.delete(path, headers=await w.admin())
    counted = {"name": "count-invoices", "description": "count the invoices", "steps": NOOP}
    await w.call("PUT", "/v1/workflows/count-invoices", json=counted)
    return {}


async def budget(w: World) -> dict[str, Any]:
    budgets = {"budgets": [{"scope": "workflow", "name": "intake", "limit_usd": 1}]}
    await w.call("PUT", "/v1/llm/budgets", json=budgets)
    return {"scope": "workflow", "name": "intake"}


@dataclass(frozen=True)
class Case:
    scope: str
    ok: int  # the status with the right scope
    setup: Setup = nothing
    one_object: bool = False  # another tenant's key gets 404
    body: Any = None  # JSON body of the call
    content: bytes | None = None  # or a raw body
    query: dict[str, Any] | None = None  # path parameters fixed by the entry
    query_string: tuple[str, ...] = ()  # setup values sent as query parameters


MATRIX: dict[tuple[str, str], Case] = {
    ("GET", "/healthz"): Case(PUBLIC, 200),
    ("GET", "/readyz"): Case(PUBLIC, 200),
    ("GET", "/metrics"): Case(PUBLIC, 200),
    ("GET", "/v1/stats"): Case("jobs:read", 200),
    ("GET", "/v1/kinds"): Case("jobs:read", 200),
    ("POST", "/v1/jobs"): Case("jobs:write", 201, body={"kind": "noop", "delay_s": 3600}),
    ("GET", "/v1/jobs"): Case("jobs:read", 200),
    ("POST", "/v1/jobs/batch"): Case("jobs:write", 201, body=[{"kind": "noop", "delay_s": 60}]),
    ("GET", "/v1/jobs/{job_id}"): Case("jobs:read", 200, queued_job, True),
    ("POST", "/v1/jobs/{job_id}/cancel"): Case("jobs:write", 200, queued_job, True),
    ("POST", "/v1/jobs/{job_id}/retry"): Case("jobs:write", 200, cancelled_job, True),
    ("GET", "/v1/jobs/{job_id}/logs"): Case("jobs:read", 200, queued_job, True),
    ("GET", "/v1/keys"): Case("admin", 200),
    ("POST", "/v1/keys"): Case("admin", 201, body={"name": "new"}),
    ("DELETE", "/v1/keys/{key_id}"): Case("admin", 200, api_key, True),
    ("PUT", "/v1/workflows/{name}"): Case(
        "workflows:write", 201, body={**SLOW_FLOW, "name": "fresh"}, query={"name": "fresh"}
    ),
    ("GET", "/v1/workflows/{name}"): Case("workflows:read", 200, workflow, True),
    ("GET", "/v1/workflows"): Case("workflows:read", 200),
    ("GET", "/v1/workflows/{name}/versions/{version}"): Case("workflows:read", 200, workflow, True),
    ("POST", "/v1/workflows/{name}/runs"): Case("workflows:write", 201, workflow, True, body={}),
    ("POST", "/v1/workflows/{name}/runs/batch"): Case(
        "workflows:write", 201, workflow, True, body=[{}]
    ),
    ("POST", "/v1/workflows/{name}/pause"): Case("workflows:write", 200, workflow, True),
    ("POST", "/v1/workflows/{name}/resume"): Case("workflows:write", 200, workflow, True),
    ("GET", "/v1/runs"): Case("workflows:read", 200),
    ("GET", "/v1/runs/{run_id}"): Case("workflows:read", 200, running_run, True),
    ("POST", "/v1/runs/{run_id}/cancel"): Case("workflows:write", 200, running_run, True),
    ("POST", "/v1/runs/{run_id}/retry"): Case("workflows:write", 200, cancelled_run, True),
    ("POST", "/v1/hooks/{token}"): Case(HOOK, 202, hook_token, body={}),
    ("GET", "/v1/subscriptions"): Case("workflows:read", 200),
    ("POST", "/v1/subscriptions"): Case(
        "workflows:write", 201, body={"url": "http://127.0.0.1:9/x"}
    ),
    ("DELETE", "/v1/subscriptions/{subscription_id}"): Case(
        "workflows:write", 204, subscription, True
    ),
    ("GET", "/v1/deliveries"): Case("workflows:read", 200),
    # No dead delivery exists in this setup: the right scope reaches the service, which answers
    # 404 for an unknown id (the 401 and 403 rows are what this entry checks).
    ("POST", "/v1/deliveries/{delivery_id}/redrive"): Case(
        "workflows:write", 404, query={"delivery_id": "none"}
    ),
    ("GET", "/v1/workers"): Case("jobs:read", 200),
    ("GET", "/v1/workers/tokens"): Case("workers", 200),
    ("POST", "/v1/workers/tokens"): Case("workers", 201, body={"name": "w2"}),
    ("DELETE", "/v1/workers/tokens/{token_id}"): Case("workers", 200, worker_token, True),
    ("POST", "/v1/artefacts"): Case("jobs:write", 201, content=b"data"),
    ("GET", "/v1/artefacts"): Case("jobs:read", 200),
    ("GET", "/v1/artefacts/{artefact_id}"): Case("jobs:read", 200, artefact, True),
    ("DELETE", "/v1/artefacts/{artefact_id}"): Case("jobs:write", 204, artefact, True),
    ("GET", "/v1/artefacts/{artefact_id}/content"): Case("jobs:read", 200, artefact, True),
    ("GET", "/v1/mail/watches"): Case("workflows:read", 200),
    ("POST", "/v1/mail/watches"): Case(
        "workflows:write",
        422,
        body={"name": "x"},  # reaches validation: a host is needed
    ),
    ("GET", "/v1/mail/watches/{name}"): Case("workflows:read", 200, mail_watch, True),
    ("DELETE", "/v1/mail/watches/{name}"): Case("workflows:write", 200, mail_watch, True),
    ("GET", "/v1/mail/watches/{name}/messages"): Case("workflows:read", 200, mail_watch, True),
    ("GET", "/v1/tenants"): Case(OPERATOR, 200),
    ("POST", "/v1/tenants"): Case(OPERATOR, 201, body={"name": "newco"}),
    ("GET", "/v1/audit"): Case("audit:read", 200),
    ("PUT", "/v1/secrets/{name}"): Case(
        "secrets:write", 201, body={"value": "value-1"}, query={"name": "NEW_ONE"}
    ),
    ("DELETE", "/v1/secrets/{name}"): Case("secrets:write", 200, secret, True),
    ("GET", "/v1/secrets"): Case("secrets:write", 200),
    ("PUT", "/v1/llm/providers/{name}"): Case("admin", 200, body=PROVIDER, query={"name": "other"}),
    ("GET", "/v1/llm/providers/{name}"): Case("jobs:read", 200, provider, True),
    ("DELETE", "/v1/llm/providers/{name}"): Case("admin", 200, provider, True),
    ("GET", "/v1/llm/providers"): Case("jobs:read", 200),
    ("PUT", "/v1/llm/policies/{name}"): Case(
        "admin", 200, provider, body={"tiers": ["local/small"]}, query={"name": "p2"}
    ),
    ("GET", "/v1/llm/policies/{name}"): Case("jobs:read", 200, policy, True),
    ("DELETE", "/v1/llm/policies/{name}"): Case("admin", 200, policy, True),
    ("GET", "/v1/llm/policies"): Case("jobs:read", 200),
    ("GET", "/v1/llm/budgets"): Case("jobs:read", 200),
    ("PUT", "/v1/llm/budgets"): Case(
        "admin", 200, body={"budgets": [{"limit_usd": 5, "period": "day"}]}
    ),
    ("DELETE", "/v1/llm/budgets/{scope}/{name}"): Case("admin", 200, budget, True),
    ("GET", "/v1/llm/usage"): Case("jobs:read", 200),
    ("GET", "/v1/llm/calls"): Case("jobs:read", 200, queued_job, query_string=("job_id",)),
    ("POST", "/v1/ask"): Case(
        "workflows:read", 200, no_llm_provider, body={"text": "count the invoices"}
    ),
}


# -- the runtime on each store ------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    schema = None
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/matrix.db"
    else:
        import asyncpg

        schema = f"faena_matrix_{uuid.uuid4().hex[:12]}"
        try:
            admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
        except (OSError, TimeoutError, asyncpg.PostgresError) as error:
            require_service("PostgreSQL", error)
        await admin.execute(f"CREATE SCHEMA {schema}")
        await admin.close()
        url = f"{POSTGRES_URL}?search_path={schema}"  # asyncpg passes it as a setting
    settings = Settings(
        database_url=url,
        home=tmp_path,
        bootstrap_key=OPERATOR_KEY,
        workers=1,
        rate_limits=False,
        secret_key="bW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW0",
        retention_days=0,
        shutdown_grace_s=1.0,
    )
    runtime = build_runtime(settings)
    await runtime.start()
    try:
        for tenant in (A, B):
            await runtime.store.create_tenant(Tenant(tenant, 0.0))  # type: ignore[attr-defined]
        transport = httpx.ASGITransport(runtime.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://faena.test") as client:
            yield World(runtime, client)
    finally:
        await runtime.stop()
        if schema is not None:
            import asyncpg

            admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
            await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            await admin.close()


def endpoints(world: World) -> set[tuple[str, str]]:
    app = world.client._transport.app  # type: ignore[attr-defined]
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return {(method.upper(), path) for path, ops in paths.items() for method in ops}


async def test_every_endpoint_has_a_matrix_entry(world: World) -> None:
    missing = sorted(endpoints(world) - MATRIX.keys())
    assert missing == [], f"endpoints without an access matrix entry: {missing}"


def target(template: str, case: Case, params: dict[str, Any]) -> str:
    path = template.format(**params)
    if case.query_string:
        path += "?" + "&".join(f"{k}={params[k]}" for k in case.query_string)
    return path


async def call(
    world: World, method: str, path: str, case: Case, headers: dict[str, str]
) -> httpx.Response:
    kwargs: dict[str, Any] = {"headers": headers}
    if case.content is not None:
        kwargs["content"] = case.content
    elif case.body is not None:
        kwargs["json"] = case.body
    return await world.client.request(method, path, **kwargs)


async def test_every_endpoint_answers_each_kind_of_caller(world: World) -> None:
    """One test walking the whole matrix (one runtime per store keeps it fast); every
    mismatch is collected, so one run shows all of them."""
    wrong: list[str] = []
    all_scopes = frozenset(KNOWN_SCOPES - {"admin"})

    def expect(what: str, response: httpx.Response, status: int, text: str = "") -> None:
        if response.status_code != status or text not in response.text:
            wrong.append(f"{what}: {response.status_code} {response.text[:200]}")

    for (method, template), case in sorted(MATRIX.items()):
        params = {**(case.query or {}), **await case.setup(world)}
        path = target(template, case, params)
        name = f"{method} {template}"
        if case.scope == PUBLIC:
            expect(f"{name} without a key", await call(world, method, path, case, {}), case.ok)
            continue
        if case.scope == HOOK:
            bogus = template.format(token="hk_not_a_token")
            expect(f"{name} with a bad token", await call(world, method, bogus, case, {}), 404)
            expect(f"{name} with its token", await call(world, method, path, case, {}), case.ok)
            continue
        expect(f"{name} without a key", await call(world, method, path, case, {}), 401)
        if case.scope == OPERATOR:
            tenant_admin = await world.admin(A)
            response = await call(world, method, path, case, tenant_admin)
            expect(f"{name} as a tenant's admin", response, 403, "'default' tenant")
            not_admin = await world.key("default", all_scopes)
            expect(f"{name} without admin", await call(world, method, path, case, not_admin), 403)
            operator = {"Authorization": f"Bearer {OPERATOR_KEY}"}
            expect(
                f"{name} as the operator", await call(world, method, path, case, operator), case.ok
            )
            continue
        lacking = await world.key(A, all_scopes - {case.scope})
        response = await call(world, method, path, case, lacking)
        expect(f"{name} lacking {case.scope}", response, 403, repr(case.scope))
        if case.one_object:
            other = await world.key(B, frozenset({case.scope}))
            expect(f"{name} from another tenant", await call(world, method, path, case, other), 404)
        right = await world.key(A, frozenset({case.scope}))
        expect(f"{name} with {case.scope}", await call(world, method, path, case, right), case.ok)
    assert wrong == [], "\n".join(wrong)


async def test_mutating_calls_are_audited(world: World) -> None:
    """Every mutating entry of the matrix leaves one audit entry per call, in its tenant."""
    auditor = await world.key(A, frozenset({"audit:read"}))
    before = await world.client.get("/v1/audit", params={"limit": 500}, headers=auditor)
    seen = {e["id"] for e in before.json()["entries"]}
    mutating = [
        (m, t, c)
        for (m, t), c in sorted(MATRIX.items())
        if m in {"POST", "PUT", "DELETE"} and c.scope not in (PUBLIC, HOOK, OPERATOR)
    ]
    for method, template, case in mutating:
        params = {**(case.query or {}), **await case.setup(world)}
        seen |= {
            e["id"]
            for e in (
                await world.client.get("/v1/audit", params={"limit": 500}, headers=auditor)
            ).json()["entries"]
        }
        right = await world.key(A, frozenset({case.scope}))
        response = await call(world, method, target(template, case, params), case, right)
        page = await world.client.get("/v1/audit", params={"limit": 500}, headers=auditor)
        # Services may add their own entries (a secret's access); the call has exactly one.
        request_id = response.headers["x-request-id"]
        new = [e for e in page.json()["entries"] if e["id"] not in seen]
        mine = [e for e in new if e["request_id"] == request_id]
        assert len(mine) == 1, f"{method} {template}: {new}"
        [entry] = mine
        assert entry["status"] == response.status_code
        assert entry["outcome"] == ("ok" if response.status_code < 400 else "error")
        assert entry["key_prefix"] == right["Authorization"][7:18]
        seen |= {e["id"] for e in new}


async def test_a_webhook_call_is_audited_in_its_tenant_without_its_token(world: World) -> None:
    params = await hook_token(world)
    response = await world.client.post(f"/v1/hooks/{params['token']}", json={})
    assert response.status_code == 202
    auditor = await world.key(A, frozenset({"audit:read"}))
    page = await world.client.get("/v1/audit", params={"action": "hooks.create"}, headers=auditor)
    [entry] = page.json()["entries"]
    assert entry["tenant"] == A and entry["key_prefix"] is None
    assert entry["target"] == params["token"][:8] + "…"


async def test_another_tenant_cannot_follow_a_jobs_logs(world: World) -> None:
    params = await queued_job(world)
    other = await world.key(B, frozenset({"jobs:read"}))
    path = f"/v1/jobs/{params['job_id']}/logs?follow=true"
    response = await world.client.get(path, headers=other)
    assert response.status_code == 404


# -- lists: another tenant's objects never show -------------------------------------------


async def acme_worker(w: World) -> dict[str, Any]:
    from faena.domain.workers import Capacity, WorkerInfo, WorkerKind

    now = w.runtime.orchestrator.clock.now()
    worker = WorkerInfo(
        "acme-edge-1", WorkerKind.REMOTE, frozenset({"noop"}), {}, Capacity(1), "v", "host",
        "server", now, now, tenant=A,
    )  # fmt: skip
    await w.runtime.store.save_worker(worker)  # type: ignore[attr-defined]
    return {"worker_id": worker.id}


async def audited_job(w: World) -> dict[str, Any]:
    """A job submitted by acme: its audit entry names it."""
    return await queued_job(w)


async def unique_policy(w: World) -> dict[str, Any]:
    await provider(w)
    await w.call("PUT", "/v1/llm/policies/acme-tiers", json={"tiers": ["local/small"]})
    return {"name": "acme-tiers"}


async def unique_budget(w: World) -> dict[str, Any]:
    budgets = {"budgets": [{"scope": "workflow", "name": "acme-flow", "limit_usd": 1}]}
    await w.call("PUT", "/v1/llm/budgets", json=budgets)
    return {"name": "acme-flow"}


async def acme_workflow(w: World) -> dict[str, Any]:
    await w.call("PUT", "/v1/workflows/acme-flow", json={**SLOW_FLOW, "name": "acme-flow"})
    return {"name": "acme-flow"}


async def acme_run(w: World) -> dict[str, Any]:
    return await running_run(w)


async def acme_secret(w: World) -> dict[str, Any]:
    await w.call("PUT", "/v1/secrets/ACME_ONLY", json={"value": "s3cret"})
    return {"name": "ACME_ONLY"}


# Each list endpoint of the matrix (a GET without a path parameter that returns the caller's
# objects), with a setup making an object of acme: acme's list shows the setup's values, zeta's
# (a key with the same scope) shows none of them. Left out: /v1/stats (checked below: counts),
# /v1/kinds (no tenant data), /v1/tenants (operator only), /v1/deliveries (a delivery needs the
# relay to reach a URL; its rows are listed by tenant like /v1/subscriptions), /v1/llm/usage and
# /v1/llm/calls (LLM calls need a provider to answer; tests/ai/test_store_contract.py scopes
# them by tenant on every store).
LISTS: dict[str, tuple[str, Setup]] = {
    "/v1/jobs": ("jobs:read", queued_job),
    "/v1/keys": ("admin", api_key),
    "/v1/workflows": ("workflows:read", acme_workflow),
    "/v1/runs": ("workflows:read", acme_run),
    "/v1/subscriptions": ("workflows:read", subscription),
    "/v1/workers": ("jobs:read", acme_worker),
    "/v1/workers/tokens": ("workers", worker_token),
    "/v1/artefacts": ("jobs:read", artefact),
    "/v1/mail/watches": ("workflows:read", mail_watch),
    "/v1/audit": ("audit:read", audited_job),
    "/v1/secrets": ("secrets:write", acme_secret),
    "/v1/llm/providers": ("jobs:read", provider),
    "/v1/llm/policies": ("jobs:read", unique_policy),
    "/v1/llm/budgets": ("jobs:read", unique_budget),
}


async def test_list_endpoints_show_no_other_tenants_objects(world: World) -> None:
    wrong: list[str] = []
    listed_here = {t for (m, t), c in MATRIX.items() if m == "GET" and "{" not in t}
    exempt = {"/healthz", "/readyz", "/metrics", "/v1/stats", "/v1/kinds", "/v1/tenants"}
    exempt |= {"/v1/deliveries", "/v1/llm/usage", "/v1/llm/calls"}
    assert listed_here - exempt == LISTS.keys(), "a list endpoint without a leak check"
    for path, (scope, setup) in sorted(LISTS.items()):
        values = [str(v) for v in (await setup(world)).values()]
        own = await world.client.get(path, headers=await world.key(A, frozenset({scope})))
        other = await world.client.get(path, headers=await world.key(B, frozenset({scope})))
        if own.status_code != 200 or not all(v in own.text for v in values):
            wrong.append(f"{path}: acme's own list lacks {values}: {own.text[:200]}")
        if other.status_code != 200 or any(v in other.text for v in values):
            wrong.append(f"{path}: zeta sees acme's {values}: {other.text[:300]}")
    assert wrong == [], "\n".join(wrong)


async def test_stats_count_only_the_callers_tenant(world: World) -> None:
    await queued_job(world)
    own = await world.client.get("/v1/stats", headers=await world.key(A, frozenset({"jobs:read"})))
    other = await world.client.get(
        "/v1/stats", headers=await world.key(B, frozenset({"jobs:read"}))
    )
    assert sum(own.json()["by_state"].values()) >= 1
    assert sum(other.json()["by_state"].values()) == 0 and other.json()["by_queue"] == {}


# -- WS /v1/events: not in the OpenAPI document, so checked here by hand -------------------


@asynccontextmanager
async def event_server(world: World) -> AsyncIterator[str]:
    """The world's app behind uvicorn on this test's loop; yields the stream's URL."""
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    app = world.client._transport.app  # type: ignore[attr-defined]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="websockets-sansio")
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn has no event for "started"
                await asyncio.sleep(0.01)
        yield f"ws://127.0.0.1:{sock.getsockname()[1]}/v1/events"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def _first_error(url: str, token: str | None) -> tuple[int, dict[str, Any]]:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async with connect(url) as ws:
        await ws.send(json.dumps({"token": token}))
        error = json.loads(await asyncio.wait_for(ws.recv(), 5))["error"]
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, error


async def test_the_event_stream_answers_each_kind_of_caller(world: World) -> None:
    """No key → 4401; a key of acme lacking ``jobs:read`` → 4403 naming it; a key of zeta
    with it streams none of acme's events while acme's own key streams them."""
    from websockets.asyncio.client import connect

    all_scopes = frozenset(KNOWN_SCOPES - {"admin"})
    lacking = (await world.key(A, all_scopes - {"jobs:read"}))["Authorization"][7:]
    acme = (await world.key(A, frozenset({"jobs:read"})))["Authorization"][7:]
    zeta = (await world.key(B, frozenset({"jobs:read"})))["Authorization"][7:]
    async with event_server(world) as url:
        code, _ = await _first_error(url, None)
        assert code == 4401
        code, error = await _first_error(url, lacking)
        assert code == 4403 and "'jobs:read'" in error["message"]
        async with (
            connect(f"{url}?types=job.state") as own,
            connect(f"{url}?types=job.state") as other,
        ):
            await own.send(json.dumps({"token": acme}))
            await other.send(json.dumps({"token": zeta}))
            assert json.loads(await own.recv()) == {"type": "hello", "tenant": A}
            assert json.loads(await other.recv()) == {"type": "hello", "tenant": B}
            acme_job = (await queued_job(world))["job_id"]
            seen = json.loads(await asyncio.wait_for(own.recv(), 5))
            assert seen["job_id"] == acme_job
            zeta_job = await world.client.post(
                "/v1/jobs",
                json={"kind": "noop", "delay_s": 3600},
                headers=await world.admin(B),
            )
            # Events reach a stream in publish order: had acme's leaked, it would come first.
            first = json.loads(await asyncio.wait_for(other.recv(), 5))
            assert first["job_id"] == zeta_job.json()["id"]
