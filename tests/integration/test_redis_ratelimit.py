"""The Redis limiter against a real Redis (``FAENA_TEST_REDIS_URL``, default the local one):
the same bucket rules as in memory, shared by every limiter on that Redis, and failing open
when Redis is gone."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator

import pytest
import structlog
from tests.conftest import require_service

from faena.adapters.redis.ratelimit import KEY_PREFIX, RedisRateLimiter
from faena.domain.auth import Principal
from faena.domain.errors import RateLimited
from faena.services.ratelimit import RateLimits, RateLimitSettings

REDIS_URL = os.environ.get("FAENA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def redis_limiter() -> AsyncIterator[RedisRateLimiter]:
    limiter = RedisRateLimiter(REDIS_URL)
    if not await limiter.ping():
        await limiter.close()
        require_service("Redis", ConnectionError(REDIS_URL))
    yield limiter
    await limiter.close()


def bucket() -> str:
    return "test:" + uuid.uuid4().hex


async def test_a_redis_bucket_allows_its_burst_then_refuses(
    redis_limiter: RedisRateLimiter,
) -> None:
    key = bucket()
    decisions = [await redis_limiter.take(key, 1.0, 3.0) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert 0 < decisions[-1].retry_after_s <= 1.0
    looked = await redis_limiter.take(key, 1.0, 3.0, 0)
    assert looked.allowed and looked.remaining == 0  # a cost of 0 only looks


async def test_a_redis_bucket_refills_at_its_rate(redis_limiter: RedisRateLimiter) -> None:
    key = bucket()
    for _ in range(2):
        await redis_limiter.take(key, 20.0, 2.0)
    assert not (await redis_limiter.take(key, 20.0, 2.0)).allowed
    await asyncio.sleep(0.06)  # one token every 50 ms: Redis keeps the time
    assert (await redis_limiter.take(key, 20.0, 2.0)).allowed


async def test_a_redis_bucket_expires_once_it_would_be_full(
    redis_limiter: RedisRateLimiter,
) -> None:
    key = bucket()
    await redis_limiter.take(key, 0.5, 4.0)
    ttl = await redis_limiter._redis.ttl(KEY_PREFIX + key)
    assert 1 <= ttl <= 3  # one token to refill at 0.5/s, plus a second


async def test_two_limiters_on_one_redis_share_the_buckets() -> None:
    """What several servers see: the limit holds across them."""
    first, second = RedisRateLimiter(REDIS_URL), RedisRateLimiter(REDIS_URL)
    try:
        if not await first.ping():
            require_service("Redis", ConnectionError(REDIS_URL))
        limits = [
            RateLimits(limiter, RateLimitSettings(per_minute=10)) for limiter in (first, second)
        ]
        who = Principal("default", uuid.uuid4().hex, "fk_x", ("admin",))
        allowed = 0
        for i in range(20):
            try:
                await limits[i % 2].after_auth(who, "GET", "/v1/jobs", "10.9.8.7" + who.key_id)
                allowed += 1
            except RateLimited as refused:
                assert refused.retry_after_s >= 1
        assert allowed == 10
    finally:
        await first.close()
        await second.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_a_missing_redis_fails_open_with_a_warning_and_a_count() -> None:
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{closed_port()}/0")
    try:
        with structlog.testing.capture_logs() as logs:
            decisions = [await limiter.take(bucket(), 1.0, 1.0) for _ in range(5)]
        assert all(d.allowed for d in decisions)
        assert limiter.errors == 5
        warnings = [e for e in logs if e["log_level"] == "warning"]
        assert len(warnings) == 1  # one warning, not one per request
        assert "fail open" in warnings[0]["event"]
    finally:
        await limiter.close()


async def test_a_missing_redis_never_locks_an_address_out() -> None:
    """The failed-authentication check only looks (a cost of 0): failing open must pass it."""
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{closed_port()}/0")
    try:
        limits = RateLimits(limiter, RateLimitSettings(auth_failures_per_minute=1))
        with structlog.testing.capture_logs():
            for _ in range(3):
                await limits.auth_failed("10.1.1.1")
                assert await limits.admit("GET", "/v1/jobs", "10.1.1.1", True) is False
    finally:
        await limiter.close()
