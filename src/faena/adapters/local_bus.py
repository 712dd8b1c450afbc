"""An EventBus inside one process: every subscriber gets its own bounded queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

from faena.domain.events import Event

DEFAULT_QUEUE_SIZE = 10_000


class LocalSubscription:
    def __init__(
        self,
        bus: LocalBus,
        tenant: str | None,
        job_id: str | None,
        size: int,
        where: Callable[[Event], bool] | None = None,
    ) -> None:
        self._bus = bus
        self.tenant = tenant
        self.job_id = job_id
        self.where = where
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=size)
        self.dropped = 0

    def offer(self, event: Event) -> None:
        if self.tenant is not None and event.tenant != self.tenant:
            return
        if self.job_id is not None and event.job_id != self.job_id:
            return
        if self.where is not None and not self.where(event):
            return
        if self.queue.full():  # a slow reader loses the oldest events, never blocks publishers
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    async def get(self) -> Event:
        return await self.queue.get()

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()

    def close(self) -> None:
        self._bus.unsubscribe(self)

    def __enter__(self) -> LocalSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalBus:
    """Fan-out in memory. Subscribers filtered by job are indexed so publishing stays cheap."""

    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self._queue_size = queue_size
        self._broad: set[LocalSubscription] = set()
        self._broad_now: tuple[LocalSubscription, ...] = ()  # a snapshot, renewed on change
        self._by_job: dict[str, set[LocalSubscription]] = {}

    def publish(self, events: Sequence[Event]) -> None:
        broad, by_job = self._broad_now, self._by_job
        if not broad and not by_job:
            return
        for event in events:
            for sub in broad:
                sub.offer(event)
            if by_job and event.job_id is not None and (subs := by_job.get(event.job_id)):
                for sub in tuple(subs):
                    sub.offer(event)

    def subscribe(
        self,
        tenant: str | None = None,
        job_id: str | None = None,
        *,
        where: Callable[[Event], bool] | None = None,
    ) -> LocalSubscription:
        sub = LocalSubscription(self, tenant, job_id, self._queue_size, where)
        if job_id is None:
            self._broad.add(sub)
            self._broad_now = tuple(self._broad)
        else:
            self._by_job.setdefault(job_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: LocalSubscription) -> None:
        if sub.job_id is None:
            self._broad.discard(sub)
            self._broad_now = tuple(self._broad)
            return
        subs = self._by_job.get(sub.job_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_job[sub.job_id]
