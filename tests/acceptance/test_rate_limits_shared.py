"""Rate limits across servers: two ``faena server`` processes on one PostgreSQL database and
one Redis hold a single limit between them, and a server whose Redis is gone keeps answering
(the limits fail open, with a warning and a metric)."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from tests.acceptance.conftest import Env
from tests.conftest import require_service

pytestmark = [pytest.mark.acceptance, pytest.mark.postgres]

REDIS_URL = os.environ.get("FAENA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def forget_local_buckets() -> None:
    """The address buckets of 127.0.0.1 outlive a test for up to a minute: start from full."""

    async def clear() -> None:
        redis = aioredis.Redis.from_url(REDIS_URL, socket_timeout=2)
        try:
            keys = [k async for k in redis.scan_iter("faena:rl:*127.0.0.1*")]
            if keys:
                await redis.delete(*keys)
        finally:
            await redis.aclose()

    try:
        asyncio.run(clear())
    except (RedisError, OSError) as error:
        require_service("Redis", error)


def limited_env(pg_env: Env, **limits: str) -> Env:
    forget_local_buckets()
    pg_env.env.update({"FAENA_RATE_LIMITS": "on", "FAENA_REDIS_URL": REDIS_URL, **limits})
    return pg_env


def test_two_servers_sharing_redis_hold_one_limit(pg_env: Env) -> None:
    env = limited_env(pg_env, FAENA_RATE_LIMIT="30", FAENA_RATE_LIMIT_BULK="30")
    servers = [env.server(), env.server()]
    clients = [env.api_at(server) for server in servers]
    try:
        statuses: list[list[int]] = [[], []]
        for i in range(60):
            response = clients[i % 2].get("/v1/stats")
            statuses[i % 2].append(response.status_code)
            if response.status_code == 429:
                assert int(response.headers["retry-after"]) >= 1
                assert response.json()["error"]["code"] == "rate_limited"
        allowed = sum(s.count(200) for s in statuses)
        # 30 a minute is one more token every 2 s: the run may earn one or two
        assert 30 <= allowed <= 32, statuses
        assert all(429 in s for s in statuses), "both servers refused once the limit was used"
        assert set(statuses[0] + statuses[1]) == {200, 429}
    finally:
        for client in clients:
            client.close()


def test_failed_authentications_on_one_server_lock_the_address_out_on_the_other(
    pg_env: Env,
) -> None:
    env = limited_env(pg_env, FAENA_RATE_LIMIT_AUTH_FAILURES="5")
    first, second = env.server(), env.server()
    with env.api_at(first) as a, env.api_at(second) as b:
        bad = {"Authorization": "Bearer fk_not_a_real_key_000000"}
        assert [a.get("/v1/stats", headers=bad).status_code for _ in range(5)] == [401] * 5
        refused = b.get("/v1/stats")  # a valid key, on the other server
        assert refused.status_code == 429, refused.text
        assert "failed authentications" in refused.json()["error"]["message"]
        assert b.get("/healthz").status_code == 200  # health checks are not locked out


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_a_server_whose_redis_is_gone_keeps_answering(pg_env: Env) -> None:
    env = limited_env(pg_env, FAENA_RATE_LIMIT="5")
    server = env.server(env={"FAENA_REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0"})
    with env.api_at(server) as api:
        assert [api.get("/v1/stats").status_code for _ in range(10)] == [200] * 10
        metrics = api.get("/metrics").text
    [errors] = [
        line for line in metrics.splitlines() if line.startswith("faena_rate_limit_backend_errors")
    ]
    assert float(errors.split()[-1]) >= 10
    assert server.output.count("rate limits fail open") == 1  # a warning, not one per request
