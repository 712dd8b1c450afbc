"""The asyncio SDK (``faena.AsyncClient``) against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

import faena
from faena.worker.registry import TaskRegistry, task
from tests.api.live import LiveServer

registry = TaskRegistry()


@task(registry=registry)
async def double(n: int) -> int:
    return n * 2


@task(registry=registry)
async def speak(lines: int) -> None:
    for i in range(lines):
        faena.current_job().log(f"said {i}")
        await asyncio.sleep(0.01)


@task(registry=registry)
async def linger(seconds: float) -> None:
    await asyncio.sleep(seconds)


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    live = LiveServer(registry).start()
    yield live
    live.stop()


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[faena.AsyncClient]:
    async with faena.AsyncClient(server.url, server.api_key, timeout=10) as c:
        yield c


async def test_a_submitted_task_returns_its_value(client: faena.AsyncClient) -> None:
    handle = await client.submit("double", {"n": 21})
    assert (await handle.wait(timeout=10)).result == 42
    assert handle.result == 42


async def test_submit_many_and_wait(client: faena.AsyncClient) -> None:
    handles = await client.submit_many([{"kind": "double", "payload": {"n": n}} for n in range(3)])
    assert [(await h.wait(timeout=10)).result for h in handles] == [0, 2, 4]


async def test_wait_times_out(client: faena.AsyncClient) -> None:
    handle = await client.submit("linger", {"seconds": 30})
    with pytest.raises(faena.WaitTimeout):
        await handle.wait(timeout=0.1)
    await handle.cancel()


async def test_logs_and_follow_logs(client: faena.AsyncClient) -> None:
    handle = await client.submit("speak", {"lines": 3})
    followed = [c.data async for c in client.follow_logs(handle.id)]
    assert followed == ["said 0\n", "said 1\n", "said 2\n"]
    assert [c.data for c in await handle.logs()] == followed


async def test_reads_and_changes(client: faena.AsyncClient) -> None:
    handle = await client.submit("linger", {"seconds": 0}, delay=60)
    assert (await client.get(handle.id)).state == "scheduled"
    assert handle.id in [j.id for j in (await client.list_jobs(state="scheduled")).jobs]
    assert (await client.cancel(handle.id)).state == "cancelled"
    assert (await client.retry(handle.id)).state in {"queued", "running", "succeeded"}
    assert "double" in await client.kinds()
    assert "by_state" in await client.stats()


async def test_errors_are_the_domain_classes(client: faena.AsyncClient) -> None:
    with pytest.raises(faena.NotFound):
        await client.get("missing")


async def test_keys(client: faena.AsyncClient) -> None:
    created = await client.create_key("async", ["jobs:read"])
    assert created.id in [k.id for k in await client.list_keys()]
    assert (await client.revoke_key(created.id)).revoked_at is not None


async def test_an_unreachable_server_is_unavailable() -> None:
    async with faena.AsyncClient("http://127.0.0.1:9", "fk_x") as c:
        with pytest.raises(faena.Unavailable, match=r"cannot reach faena at http://127.0.0.1:9"):
            await c.kinds()
