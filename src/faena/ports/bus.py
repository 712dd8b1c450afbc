"""The EventBus port: live fan-out of events to subscribers in this process (and, with a
notifying backend, to other servers)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from faena.domain.events import Event


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[Event]: ...

    async def get(self) -> Event: ...

    def close(self) -> None: ...


class EventBus(Protocol):
    def publish(self, events: Sequence[Event]) -> None:
        """Deliver to current subscribers; never blocks (slow subscribers drop oldest)."""

    def subscribe(self, tenant: str | None = None, job_id: str | None = None) -> Subscription:
        """Events of ``tenant`` (None: all), optionally only those of one job."""
