"""``/readyz``: ready only when the store answers, the schema is current and the background
loops run; otherwise 503 with a JSON body naming each failing check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from faena.bootstrap import Runtime, build_runtime
from faena.config import Settings
from faena.domain.errors import Unavailable
from faena.observability.readiness import shipped_schema_version


async def readyz(runtime: Runtime) -> httpx.Response:
    transport = httpx.ASGITransport(runtime.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://faena.test") as client:
        return await client.get("/readyz")


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/faena.db",
        home=tmp_path,
        workers=2,
        bootstrap_key="fk_test_admin_key_for_readyz_tests_only",
    )
    running = build_runtime(settings)
    await running.start()
    yield running
    await running.stop()


async def test_ready_lists_every_check(runtime: Runtime) -> None:
    response = await readyz(runtime)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["schema_version"] == shipped_schema_version(runtime.store)
    assert set(body["checks"]) >= {"store", "migrations", "pool", "reaper"}
    assert set(body["checks"].values()) == {"ok"}


async def test_an_unreachable_store_is_not_ready(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down() -> None:
        raise Unavailable("cannot reach PostgreSQL at db.internal:5432 (connection refused)")

    monkeypatch.setattr(runtime.store, "ping", down)
    response = await readyz(runtime)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["store"] == "unreachable"
    assert body["checks"]["migrations"] == "unknown (store unreachable)"
    assert body["checks"]["pool"] == "ok"
    assert "store" in body["error"]["message"]


async def test_a_failing_check_shows_no_exception_text_and_logs_it_with_the_request_id(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/readyz has no key: a driver's message (an address, a path) must not reach it."""
    import structlog

    async def broken() -> None:
        raise RuntimeError("asyncpg: password authentication failed for user faena at 10.1.2.3")

    monkeypatch.setattr(runtime.store, "ping", broken)
    with structlog.testing.capture_logs() as logs:
        response = await readyz(runtime)
    assert response.status_code == 503
    assert "10.1.2.3" not in response.text and "password" not in response.text
    assert response.json()["checks"]["store"] == "error"
    request_id = response.headers["x-request-id"]
    (line,) = [e for e in logs if e["event"] == "not ready"]
    assert line["request_id"] == request_id
    assert "10.1.2.3" in line["check_store"]


async def test_a_store_that_does_not_answer_in_time_is_not_ready(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def hang() -> None:
        await asyncio.sleep(60)

    monkeypatch.setattr(runtime.store, "ping", hang)
    monkeypatch.setattr("faena.observability.readiness.STORE_TIMEOUT_S", 0.05)
    body = (await readyz(runtime)).json()
    assert body["checks"]["store"].startswith("no answer within")


async def test_a_schema_behind_the_code_is_not_ready(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def old() -> int:
        return 1

    monkeypatch.setattr(runtime.store, "schema_version", old)
    response = await readyz(runtime)
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == "schema behind this code"


async def test_a_stopped_pool_or_reaper_is_not_ready(runtime: Runtime) -> None:
    assert runtime.pool is not None
    reaper: Any = runtime._reaper_task
    reaper.cancel()
    await asyncio.gather(reaper, return_exceptions=True)
    await runtime.pool.stop(0)
    response = await readyz(runtime)
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["pool"] == "the pool's loops are not running"
    assert checks["reaper"] == "stopped"
    assert checks["store"] == "ok"
