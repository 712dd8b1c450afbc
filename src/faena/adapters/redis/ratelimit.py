"""Token buckets in Redis, shared by every server pointing at it: one atomic Lua script per
take, timed by Redis's own clock so servers with skewed clocks still agree.

Fails open: when Redis cannot answer, the request is allowed, a warning is logged (at most
every :data:`WARN_EVERY_S`) and :attr:`RedisRateLimiter.errors` counts it; after a failure,
Redis is not asked again for :data:`RETRY_AFTER_FAILURE_S`, so an outage costs no latency.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from faena.domain.ratelimit import ALLOW, Decision

log = structlog.get_logger("faena.ratelimit")

KEY_PREFIX = "faena:rl:"
TIMEOUT_S = 0.25  # a rate limit must never be what makes a request slow
RETRY_AFTER_FAILURE_S = 1.0
WARN_EVERY_S = 10.0

# The rules of faena.domain.ratelimit.take, in Lua. State: a hash {t: tokens, a: at}; it expires
# when it would be full again (a missing bucket is a full one).
TAKE_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 't', 'a')
local tokens = burst
if state[1] then
  local elapsed = now - tonumber(state[2])
  if elapsed < 0 then elapsed = 0 end
  tokens = math.min(burst, tonumber(state[1]) + elapsed * rate)
end
local allowed = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'a', string.format('%.17g', now))
redis.call('EXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 1)
return {allowed, string.format('%.17g', wait), string.format('%.17g', tokens)}
"""


class RedisRateLimiter:
    shared = True

    def __init__(self, url: str, *, client: Any | None = None) -> None:
        self.url = url
        self._redis: Any = client or aioredis.Redis.from_url(
            url,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
            health_check_interval=30,
        )
        self._script = self._redis.register_script(TAKE_SCRIPT)
        self.errors = 0  # takes answered "allowed" because Redis could not answer
        self._skip_until = 0.0
        self._warned_at = -WARN_EVERY_S

    async def take(self, bucket_key: str, rate: float, burst: float, cost: float = 1.0) -> Decision:
        now = time.monotonic()
        if now < self._skip_until:
            self.errors += 1
            return ALLOW
        try:
            allowed, wait, tokens = await self._script(
                keys=[KEY_PREFIX + bucket_key], args=[repr(rate), repr(burst), repr(cost)]
            )
        except (TimeoutError, RedisError, OSError) as error:
            self._failed(now, error)
            return ALLOW
        left = float(tokens)
        return Decision(bool(allowed), float(wait), int(left) if left >= 0 else 0)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (TimeoutError, RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._redis.aclose()

    def _failed(self, now: float, error: BaseException) -> None:
        self.errors += 1
        self._skip_until = now + RETRY_AFTER_FAILURE_S
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            log.warning(
                "rate limits fail open: Redis is not answering",
                error=f"{type(error).__name__}: {error}",
                failures=self.errors,
            )
