"""The RateLimiter port: token buckets kept by key, in this process or shared by servers.

One operation, :meth:`RateLimiter.take`; the arithmetic is :mod:`faena.domain.ratelimit`'s.
A limiter whose state lives in this process also offers :meth:`LocalRateLimiter.take_now`, so
the request path pays no await for it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from faena.domain.ratelimit import Decision


@runtime_checkable
class RateLimiter(Protocol):
    shared: bool  # True: the buckets hold across every server using the same backend

    async def take(self, bucket_key: str, rate: float, burst: float, cost: float = 1.0) -> Decision:
        """Take ``cost`` tokens from the bucket ``bucket_key`` (``rate`` tokens a second, at most
        ``burst``); a cost of 0 only looks. A backend that cannot answer allows (fails open)."""

    async def close(self) -> None: ...


@runtime_checkable
class LocalRateLimiter(RateLimiter, Protocol):
    def take_now(self, bucket_key: str, rate: float, burst: float, cost: float = 1.0) -> Decision:
        """:meth:`take`, without awaiting: the buckets are in this process."""
