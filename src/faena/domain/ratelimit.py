"""Token buckets, as pure arithmetic: every limiter (in memory, Redis's Lua script) applies
these same rules, so one set of property tests pins what "100 requests a minute" means.

A bucket holds at most ``burst`` tokens and gains ``rate`` tokens a second; a request costs
``cost`` tokens and is allowed only when the bucket holds that many. A bucket never seen is full.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MINUTE_S = 60.0


@dataclass(frozen=True, slots=True)
class Bucket:
    """The state a limiter keeps per key: tokens left at time ``at`` (seconds)."""

    tokens: float
    at: float


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one take: allowed or not, when to retry, and tokens left (rounded down)."""

    allowed: bool
    retry_after_s: float
    remaining: int


# What a limiter answers when it cannot tell (fails open): allowed, with room to spare.
ALLOW = Decision(allowed=True, retry_after_s=0.0, remaining=2**31 - 1)


def refill(bucket: Bucket | None, now: float, rate: float, burst: float) -> float:
    """Tokens in the bucket at ``now``. A clock that went backwards refills nothing."""
    if bucket is None:
        return burst
    return min(burst, bucket.tokens + max(0.0, now - bucket.at) * rate)


def take(
    bucket: Bucket | None, now: float, rate: float, burst: float, cost: float = 1.0
) -> tuple[Bucket, Decision]:
    """Take ``cost`` tokens if there are that many; the new state and the decision.

    A cost of 0 takes nothing and reports the level (``remaining``), to look without charging.
    A refused take leaves the bucket as it was (refilled to ``now``).
    """
    tokens = refill(bucket, now, rate, burst)
    if tokens >= cost:
        tokens -= cost
        return Bucket(tokens, now), Decision(True, 0.0, math.floor(tokens))
    return Bucket(tokens, now), Decision(False, wait_s(tokens, cost, rate), math.floor(tokens))


def wait_s(tokens: float, needed: float, rate: float) -> float:
    """Seconds until a bucket holding ``tokens`` holds ``needed`` at ``rate`` a second."""
    if tokens >= needed:
        return 0.0
    if rate <= 0:
        return math.inf
    return (needed - tokens) / rate


def per_second(per_minute: float) -> float:
    return per_minute / MINUTE_S


def retry_after_header(seconds: float) -> int:
    """The ``Retry-After`` value: whole seconds, rounded up, at least 1."""
    if math.isinf(seconds) or seconds > 86_400:
        return 86_400
    return max(1, math.ceil(seconds))
