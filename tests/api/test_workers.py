"""``/v1/workers``: the registry and worker tokens, on a real runtime (in-memory store)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from faena.testing import InMemoryFaena


@pytest.fixture
async def faena() -> AsyncIterator[tuple[InMemoryFaena, httpx.AsyncClient]]:
    async with InMemoryFaena(workers=2) as f:
        headers = {"Authorization": f"Bearer {f.api_key}"}
        transport = httpx.ASGITransport(f.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://faena.test", headers=headers
        ) as client:
            yield f, client


async def _until_listed(client: httpx.AsyncClient) -> list[dict[str, object]]:
    async with asyncio.timeout(5):
        while True:
            workers = (await client.get("/v1/workers")).json()["workers"]
            if workers:
                return list(workers)
            await asyncio.sleep(0.02)


async def test_the_local_pool_is_listed_as_a_live_worker(
    faena: tuple[InMemoryFaena, httpx.AsyncClient],
) -> None:
    _, client = faena
    (worker,) = await _until_listed(client)
    assert worker["kind"] == "local"
    assert worker["live"] is True
    assert worker["state"] == "connected"
    assert "sleep" in worker["kinds"]  # type: ignore[operator]
    assert worker["capacity"]["slots"] == 2  # type: ignore[index]


async def test_each_worker_names_the_jobs_running_there(
    faena: tuple[InMemoryFaena, httpx.AsyncClient],
) -> None:
    _, client = faena
    await _until_listed(client)
    r = await client.post("/v1/jobs", json={"kind": "sleep", "payload": {"seconds": 30}})
    job_id = r.json()["id"]
    await _until_running_jobs(client, [job_id])
    assert (await client.post(f"/v1/jobs/{job_id}/cancel")).status_code == 200
    await _until_running_jobs(client, [])


async def _until_running_jobs(client: httpx.AsyncClient, expected: list[str]) -> None:
    async with asyncio.timeout(5):
        while True:
            (worker,) = await _until_listed(client)
            if worker["running_jobs"] == expected:
                return
            await asyncio.sleep(0.02)


async def test_a_queued_job_says_why_it_is_not_placed(
    faena: tuple[InMemoryFaena, httpx.AsyncClient],
) -> None:
    _, client = faena
    await _until_listed(client)
    r = await client.post(
        "/v1/jobs", json={"kind": "sleep", "payload": {"seconds": 0}, "labels": {"gpu": "true"}}
    )
    job = (await client.get(f"/v1/jobs/{r.json()['id']}")).json()
    assert job["state"] == "queued"
    assert job["placement"] == "no connected worker serving 'sleep' has label gpu=true"


async def test_worker_tokens_are_created_once_listed_and_revoked(
    faena: tuple[InMemoryFaena, httpx.AsyncClient],
) -> None:
    _, client = faena
    created = await client.post("/v1/workers/tokens", json={"name": "edge"})
    assert created.status_code == 201
    body = created.json()
    assert body["token"].startswith("fw_")
    listed = (await client.get("/v1/workers/tokens")).json()["tokens"]
    assert [t["name"] for t in listed] == ["edge"]
    assert "token" not in listed[0]
    revoked = await client.delete(f"/v1/workers/tokens/{body['id']}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    missing = await client.delete("/v1/workers/tokens/nope")
    assert missing.status_code == 404


async def test_worker_tokens_need_the_workers_scope(
    faena: tuple[InMemoryFaena, httpx.AsyncClient],
) -> None:
    f, client = faena
    key = await f.runtime.keys.create("default", "jobs", ["jobs:read", "jobs:write"])
    headers = {"Authorization": f"Bearer {key.plaintext}"}
    r = await client.post("/v1/workers/tokens", json={"name": "x"}, headers=headers)
    assert r.status_code == 403
    assert (await client.get("/v1/workers", headers=headers)).status_code == 200


async def test_a_job_declares_the_resources_it_needs(
    faena: tuple[InMemoryFaena, httpx.AsyncClient],
) -> None:
    _, client = faena
    r = await client.post(
        "/v1/jobs",
        json={"kind": "noop", "resources": {"cpu": 2, "memory_mb": 512}, "delay_s": 60},
    )
    assert r.status_code == 201, r.text
    job = (await client.get(f"/v1/jobs/{r.json()['id']}")).json()
    assert job["resources"] == {"cpu": 2.0, "memory_mb": 512}
    bad = await client.post("/v1/jobs", json={"kind": "noop", "resources": {"gpus": 1}})
    assert bad.status_code == 422


# -- tenancy: each tenant sees its own workers; shared tokens are the operator's -------------


async def _tenant_key(f: InMemoryFaena, tenant: str, scopes: list[str]) -> dict[str, str]:
    from faena.domain.tenants import Tenant

    if await f.runtime.store.get_tenant(tenant) is None:  # type: ignore[attr-defined]
        await f.runtime.store.create_tenant(Tenant(tenant, 0.0))  # type: ignore[attr-defined]
    key = await f.runtime.keys.create(tenant, "k", scopes)
    return {"Authorization": f"Bearer {key.plaintext}"}


async def test_workers_are_listed_to_their_own_tenant_and_shared_ones_to_the_operator(
    faena: tuple[InMemoryFaena, httpx.AsyncClient],
) -> None:
    from faena.domain.workers import Capacity, WorkerInfo, WorkerKind

    f, client = faena
    await _until_listed(client)  # the local pool (shared: it serves every tenant)
    now = f.runtime.orchestrator.clock.now()

    def remote(worker_id: str, tenant: str | None) -> WorkerInfo:
        return WorkerInfo(
            worker_id,
            WorkerKind.REMOTE,
            frozenset({"noop"}),
            {},
            Capacity(1),
            "t",
            "h",
            "s",
            now,
            now,
            tenant=tenant,
        )

    for worker in (remote("a-1", "a"), remote("b-1", "b"), remote("fleet", None)):
        await f.runtime.store.save_worker(worker)  # type: ignore[attr-defined]
    b_key = await _tenant_key(f, "b", ["admin"])
    b_seen = (await client.get("/v1/workers", headers=b_key)).json()["workers"]
    assert [(w["id"], w["tenant"]) for w in b_seen] == [("b-1", "b")]
    operator_seen = (await client.get("/v1/workers")).json()["workers"]
    ids = {w["id"] for w in operator_seen}
    assert "fleet" in ids and "a-1" not in ids and "b-1" not in ids
    assert all(w["tenant"] is None for w in operator_seen)


async def test_only_the_operators_admin_key_creates_a_shared_worker_token(
    faena: tuple[InMemoryFaena, httpx.AsyncClient],
) -> None:
    f, client = faena
    tenant_admin = await _tenant_key(f, "b", ["admin"])
    operator_workers = await _tenant_key(f, "default", ["workers"])
    body = {"name": "fleet", "shared": True}
    for headers in (tenant_admin, operator_workers):
        refused = await client.post("/v1/workers/tokens", json=body, headers=headers)
        assert refused.status_code == 403, refused.text
        assert "shared worker token" in refused.json()["error"]["message"]
    created = await client.post("/v1/workers/tokens", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["shared"] is True and created.json()["tenant"] == "default"
    plain = await client.post("/v1/workers/tokens", json={"name": "b-edge"}, headers=tenant_admin)
    assert plain.status_code == 201 and plain.json()["shared"] is False
    assert plain.json()["tenant"] == "b"
