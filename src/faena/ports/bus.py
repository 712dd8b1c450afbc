"""The EventBus port: live fan-out of events to subscribers in this process (and, with a
notifying backend, to other servers)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol

from faena.domain.events import Event


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[Event]: ...

    async def get(self) -> Event: ...

    def close(self) -> None: ...


class EventBus(Protocol):
    def publish(self, events: Sequence[Event]) -> None:
        """Deliver to current subscribers; never blocks (slow subscribers drop oldest)."""

    def subscribe(
        self,
        tenant: str | None = None,
        job_id: str | None = None,
        *,
        where: Callable[[Event], bool] | None = None,
    ) -> Subscription:
        """Events of ``tenant`` (None: all), optionally only those of one job, and only those
        ``where`` accepts. ``where`` runs in ``publish``, so a subscriber that wants few of the
        events (the cancel listener of a pool, say) costs a call per event, not a queue hop."""


class ChangeFeed(Protocol):
    """What other processes sharing the store committed, as it happens (a store whose
    ``supports_notify`` is true builds one: ``NotifyingStore.change_feed``).

    ``start`` hands it where to deliver: ``deliver`` gets the events other servers' changes
    produced (for the local bus: waits, log follows, the pool's cancel listener), ``wake`` is
    called when work may have become claimable. The feed never delivers this process's own
    changes (its services publish those themselves), reconnects on its own when the connection
    drops, and calls ``wake`` after each reconnect, since what happened meanwhile went unheard.
    Best effort: consumers keep a polling fallback.
    """

    def start(self, deliver: Callable[[Sequence[Event]], None], wake: Callable[[], None]) -> None:
        """Begin listening in the background (needs a running event loop)."""

    async def stop(self) -> None: ...

    @property
    def connected(self) -> bool: ...
