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
