"""Rate limits through the HTTP API (in-memory buckets): 429 with ``Retry-After``, the health,
bulk and default classes, per-key limits, failed authentications, trusted proxies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from faena.adapters.local_bus import LocalBus
from faena.adapters.memory.ratelimit import MemoryRateLimiter
from faena.adapters.memory.store import MemoryStore
from faena.api.app import create_app
from faena.domain.jobs import DEFAULT_TENANT
from faena.ports.clock import SystemClock
from faena.services.keys import KeyService
from faena.services.orchestrator import Orchestrator
from faena.services.ratelimit import RateLimits, RateLimitSettings
from tests.api.conftest import assert_error, catalog


@dataclass
class Limited:
    client: httpx.AsyncClient
    keys: KeyService
    limits: RateLimits
    key: str
    other: str

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}


@pytest.fixture
async def limited() -> AsyncIterator[Limited]:
    store = MemoryStore()
    await store.open()
    clock = SystemClock()
    orchestrator = Orchestrator(store, LocalBus(), clock, catalog())
    keys = KeyService(store, clock)
    key = (await keys.create(DEFAULT_TENANT, "k", ["admin"])).plaintext
    other = (await keys.create(DEFAULT_TENANT, "o", ["admin"])).plaintext
    limits = RateLimits(
        MemoryRateLimiter(),
        RateLimitSettings(
            per_minute=5,
            bulk_per_minute=2,
            health_per_minute=4,
            auth_failures_per_minute=3,
            trusted_proxies=("10.0.0.0/8",),
        ),
    )
    app = create_app(orchestrator, keys, rate_limits=limits)
    transport = httpx.ASGITransport(app, client=("192.0.2.1", 4321))
    async with httpx.AsyncClient(transport=transport, base_url="http://faena.test") as client:
        yield Limited(client, keys, limits, key, other)
    await store.close()


def assert_limited(response: httpx.Response, limit: int) -> str:
    message = assert_error(response, 429, "rate_limited")
    retry = int(response.headers["retry-after"])
    assert retry >= 1
    assert response.headers["ratelimit-limit"] == str(limit)
    assert response.headers["ratelimit-remaining"] == "0"
    assert response.headers["ratelimit-reset"] == str(retry)
    return message


async def test_a_key_past_its_limit_gets_429_with_retry_after(limited: Limited) -> None:
    for _ in range(5):
        assert (await limited.client.get("/v1/jobs", headers=limited.auth())).status_code == 200
    response = await limited.client.get("/v1/jobs", headers=limited.auth())
    message = assert_limited(response, 5)
    assert "5 requests per minute" in message
    assert response.headers["retry-after"] == "12"  # a token every 60/5 s


async def test_the_hot_routes_are_limited_too(limited: Limited) -> None:
    ids = []
    for _ in range(5):
        response = await limited.client.post(
            "/v1/jobs", json={"kind": "noop"}, headers=limited.auth()
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    assert_limited(await limited.client.get(f"/v1/jobs/{ids[0]}", headers=limited.auth()), 5)


async def test_the_address_limit_holds_across_keys(limited: Limited) -> None:
    for i in range(5):
        key = limited.key if i % 2 else limited.other
        assert (await limited.client.get("/v1/stats", headers=limited.auth(key))).status_code == 200
    message = assert_limited(await limited.client.get("/v1/stats", headers=limited.auth()), 5)
    assert "client address" in message or "API key" in message


async def test_bulk_requests_have_their_own_limit(limited: Limited) -> None:
    batch = [{"kind": "noop"}]
    for _ in range(2):
        response = await limited.client.post("/v1/jobs/batch", json=batch, headers=limited.auth())
        assert response.status_code == 201, response.text
    response = await limited.client.post("/v1/jobs/batch", json=batch, headers=limited.auth())
    assert "bulk" in assert_limited(response, 2)
    assert (await limited.client.get("/v1/jobs", headers=limited.auth())).status_code == 200


async def test_health_checks_have_their_own_limit_per_address(limited: Limited) -> None:
    for _ in range(4):
        assert (await limited.client.get("/healthz")).status_code == 200
    assert_limited(await limited.client.get("/healthz"), 4)
    assert (await limited.client.get("/v1/jobs", headers=limited.auth())).status_code == 200


async def test_a_key_with_its_own_limit_gets_it(limited: Limited) -> None:
    raised = await limited.keys.create(DEFAULT_TENANT, "raised", ["admin"], rate_limit=12)
    for _ in range(12):
        response = await limited.client.get("/v1/jobs", headers=limited.auth(raised.plaintext))
        assert response.status_code == 200
    response = await limited.client.get("/v1/jobs", headers=limited.auth(raised.plaintext))
    assert_limited(response, 12)
    # the default keys from the same address still have their own (default-sized) bucket
    assert (await limited.client.get("/v1/jobs", headers=limited.auth())).status_code == 200


async def test_a_key_with_its_own_bulk_limit_gets_it(limited: Limited) -> None:
    own = await limited.keys.create(DEFAULT_TENANT, "loader", ["admin"], rate_limit_bulk=4)
    batch = [{"kind": "noop"}]
    for _ in range(4):  # the server's bulk limit is 2
        response = await limited.client.post(
            "/v1/jobs/batch", json=batch, headers=limited.auth(own.plaintext)
        )
        assert response.status_code == 201, response.text
    response = await limited.client.post(
        "/v1/jobs/batch", json=batch, headers=limited.auth(own.plaintext)
    )
    assert "bulk" in assert_limited(response, 4)


async def test_a_raised_key_without_a_bulk_limit_gets_a_tenth_of_its_own(
    limited: Limited,
) -> None:
    raised = await limited.keys.create(DEFAULT_TENANT, "raised", ["admin"], rate_limit=30)
    batch = [{"kind": "noop"}]
    headers = limited.auth(raised.plaintext)
    for _ in range(3):
        response = await limited.client.post("/v1/jobs/batch", json=batch, headers=headers)
        assert response.status_code == 201, response.text
    response = await limited.client.post("/v1/jobs/batch", json=batch, headers=headers)
    assert_limited(response, 3)


async def test_a_key_with_its_own_health_limit_draws_from_its_own_bucket(
    limited: Limited,
) -> None:
    prober = await limited.keys.create(DEFAULT_TENANT, "prober", ["jobs:read"], rate_limit_health=6)
    headers = limited.auth(prober.plaintext)
    for path in ["/healthz", "/readyz"] * 3:  # past the address's 4 health checks a minute
        assert (await limited.client.get(path, headers=headers)).status_code == 200
    message = assert_limited(await limited.client.get("/healthz", headers=headers), 6)
    assert "health checks of this API key" in message
    for _ in range(4):  # the address's own health bucket was not touched
        assert (await limited.client.get("/healthz")).status_code == 200


async def test_a_refused_key_on_a_health_path_uses_the_address_bucket(limited: Limited) -> None:
    headers = limited.auth("fk_not_a_real_key_at_all")
    statuses = [
        (await limited.client.get("/healthz", headers=headers)).status_code for _ in range(5)
    ]
    assert statuses == [200] * 4 + [429]


async def test_failed_authentications_lock_the_address_out(limited: Limited) -> None:
    for _ in range(3):
        response = await limited.client.get("/v1/jobs", headers=limited.auth("fk_wrong_key_xx"))
        assert_error(response, 401, "unauthorized")
    response = await limited.client.get("/v1/jobs", headers=limited.auth("fk_wrong_key_xx"))
    assert "failed authentications" in assert_limited(response, 3)
    # even a valid key from that address waits
    assert_limited(await limited.client.get("/v1/jobs", headers=limited.auth()), 3)
    # a request without a key is not an attempt, and other addresses are not locked out
    assert_error(await limited.client.get("/v1/jobs"), 401, "unauthorized")
    response = await limited.client.get(
        "/v1/jobs", headers={**limited.auth(), "X-Forwarded-For": "1.2.3.4"}
    )
    assert response.status_code == 429  # 192.0.2.1 is no trusted proxy: its header is ignored


async def test_behind_a_trusted_proxy_the_forwarded_address_counts() -> None:
    store = MemoryStore()
    clock = SystemClock()
    keys = KeyService(store, clock)
    limits = RateLimits(
        MemoryRateLimiter(),
        RateLimitSettings(per_minute=2, health_per_minute=2, trusted_proxies=("10.0.0.0/8",)),
    )
    app = create_app(Orchestrator(store, LocalBus(), clock, catalog()), keys, rate_limits=limits)
    transport = httpx.ASGITransport(app, client=("10.1.2.3", 4321))
    async with httpx.AsyncClient(transport=transport, base_url="http://faena.test") as client:
        for client_ip in ("1.1.1.1", "2.2.2.2"):
            headers = {"X-Forwarded-For": client_ip}
            assert [
                (await client.get("/healthz", headers=headers)).status_code for _ in range(3)
            ] == [200, 200, 429]


async def test_requests_without_a_key_are_limited_by_address(limited: Limited) -> None:
    statuses = [(await limited.client.get("/openapi.json")).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]


async def test_a_request_with_a_key_to_no_route_is_counted(limited: Limited) -> None:
    for _ in range(5):
        response = await limited.client.get("/v1/nowhere", headers=limited.auth())
        assert response.status_code == 404
    assert_limited(await limited.client.get("/openapi.json"), 5)
    assert limited.limits.counts.refused == {"ip": 1}
