"""Token buckets in this process's memory: exact for one server, O(1) per take, no await."""

from __future__ import annotations

import time
from collections.abc import Callable

from faena.domain.ratelimit import Decision

MAX_BUCKETS = 100_000  # past this, buckets that have refilled are forgotten (a full bucket
# and a missing one are the same thing)


class MemoryRateLimiter:
    shared = False

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_buckets: int = MAX_BUCKETS
    ) -> None:
        self.clock = clock
        self.max_buckets = max_buckets
        # bucket key -> (tokens, at, when it is full again)
        self._buckets: dict[str, tuple[float, float, float]] = {}

    def take_now(self, bucket_key: str, rate: float, burst: float, cost: float = 1.0) -> Decision:
        # faena.domain.ratelimit.take, inlined on plain floats: this runs on every request
        now = self.clock()
        found = self._buckets.get(bucket_key)
        if found is None:
            tokens = burst
            if len(self._buckets) >= self.max_buckets:
                self._forget_full(now)
        else:
            tokens = found[0] + (now - found[1]) * rate if now > found[1] else found[0]
            tokens = min(tokens, burst)
        if tokens >= cost:
            tokens -= cost
            decision = Decision(True, 0.0, int(tokens))
        else:
            decision = Decision(False, (cost - tokens) / rate, int(tokens))
        self._buckets[bucket_key] = (tokens, now, now + (burst - tokens) / rate)
        return decision

    async def take(self, bucket_key: str, rate: float, burst: float, cost: float = 1.0) -> Decision:
        return self.take_now(bucket_key, rate, burst, cost)

    async def close(self) -> None:
        self._buckets.clear()

    def __len__(self) -> int:
        return len(self._buckets)

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that are full by now; if all are still draining (a flood of new
        keys), drop the older half rather than grow without bound."""
        self._buckets = {k: v for k, v in self._buckets.items() if v[2] > now}
        if len(self._buckets) >= self.max_buckets:
            keep = list(self._buckets.items())[len(self._buckets) // 2 :]
            self._buckets = dict(keep)
