"""Group commit: many small writes become few large ones without a timer on the hot path.

Items queue up while one flush is in flight; when it ends, everything that arrived meanwhile is
flushed together. An idle system writes each item at once (lowest latency); a busy one writes
hundreds per statement (highest throughput).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import structlog

from faena.services.breaker import log_store_error

T = TypeVar("T")
log = structlog.get_logger("faena.batching")

CLOSE_TIMEOUT_S = 10.0  # how long close() keeps retrying a store that does not answer


class GroupCommitter(Generic[T]):
    def __init__(
        self,
        flush: Callable[[Sequence[T]], Awaitable[None]],
        *,
        max_batch: int = 2000,
        name: str = "batch",
        retry_delay_s: float = 0.5,
        max_retry_delay_s: float = 5.0,
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._name = name
        self._retry_delay_s = retry_delay_s
        self._max_retry_delay_s = max(retry_delay_s, max_retry_delay_s)
        self._pending: list[T] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def add(self, item: T) -> None:
        """Queue ``item``; it is written by the next flush."""
        self._pending.append(item)
        self._kick()

    def add_many(self, items: Sequence[T]) -> None:
        self._pending.extend(items)
        self._kick()

    async def drain(self) -> None:
        """Wait until everything queued so far is written."""
        if not self._pending and self._task is None:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._kick()
        await waiter

    @property
    def backlog(self) -> int:
        return len(self._pending)

    def _kick(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def _run(self) -> None:
        delay = self._retry_delay_s
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                waiters = [] if self._pending else self._take_waiters()
                try:
                    await self._flush(batch)
                except Exception as e:
                    # Nothing is dropped: the batch goes back to the front and is tried again,
                    # backing off while the store stays away (a database restart).
                    log_store_error(
                        log, "flush failed; retrying", e, batch=self._name, in_s=delay
                    )
                    self._pending[:0] = batch
                    self._waiters.extend(waiters)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._max_retry_delay_s)
                    continue
                delay = self._retry_delay_s
                for w in waiters:
                    if not w.done():
                        w.set_result(None)
            for w in self._take_waiters():
                if not w.done():
                    w.set_result(None)
        finally:
            self._task = None
            if self._pending and not self._closed:
                self._kick()

    def _take_waiters(self) -> list[asyncio.Future[None]]:
        waiters, self._waiters = self._waiters, []
        return waiters

    async def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Write what is queued and stop. While the store stays away, give up after
        ``timeout_s`` so a shutdown cannot hang: what was not written is logged, and is never
        lost for good (a job whose completion was not written runs again after its lease)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self.drain()
        if self._pending:
            log.error(
                "store unavailable at shutdown; unwritten items dropped",
                batch=self._name,
                items=len(self._pending),
                waited_s=timeout_s,
            )
        self._closed = True
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for w in self._take_waiters():
            if not w.done():
                w.set_exception(ConnectionError(f"{self._name}: the store did not answer"))
