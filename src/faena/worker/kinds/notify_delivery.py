"""How notifications are delivered: a circuit breaker per endpoint, grouping per channel
within a short window, and one shared HTTP client that records each delivery's status. Used
by :mod:`faena.worker.kinds.notify`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from faena.domain.errors import Unavailable
from faena.services.breaker import CircuitBreaker
from faena.worker.outcome import Outcome, describe, failed

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    group_s: float = 0.5
    breaker_failures: int = 5
    breaker_reset_s: float = 30.0
    max_group: int = 50


def endpoint_of(url: str) -> str:
    """The URL without credentials and query: the breaker's and the result's name for it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# -- breakers and groups ----------------------------------------------------------------------


class Breakers:
    """One :class:`CircuitBreaker` per endpoint, made on first use."""

    def __init__(self, config: NotifyConfig) -> None:
        self.config = config
        self._by_endpoint: dict[str, CircuitBreaker] = {}

    def of(self, endpoint: str) -> CircuitBreaker:
        found = self._by_endpoint.get(endpoint)
        if found is None:
            found = CircuitBreaker(
                failures=self.config.breaker_failures,
                reset_s=self.config.breaker_reset_s,
                name=endpoint,
            )
            self._by_endpoint[endpoint] = found
        return found

    async def call(self, endpoint: str, deliver: Callable[[], Awaitable[Outcome]]) -> Outcome:
        breaker = self.of(endpoint)
        try:
            breaker.before()
        except Unavailable:
            return failed(
                f"circuit open for {endpoint}: it failed {self.config.breaker_failures} times "
                f"in a row; not called (the breaker probes again after "
                f"{self.config.breaker_reset_s:g}s)",
                result={"endpoint": endpoint, "delivered": False, "breaker": "open"},
            )
        try:
            outcome = await deliver()
        except BaseException:
            breaker.abandoned()
            raise
        if outcome.succeeded or not outcome.retryable:  # it answered
            breaker.succeeded()
        else:
            breaker.failed(Unavailable(outcome.error or "failed"))
        return outcome


@dataclass
class _Group(Generic[T]):
    items: list[T] = field(default_factory=list)
    futures: list[asyncio.Future[Outcome]] = field(default_factory=list)


class Grouper(Generic[T]):
    """Collects items per key for ``window_s`` and sends each key's items as one delivery."""

    def __init__(
        self, window_s: float, max_items: int, send: Callable[[list[T]], Awaitable[Outcome]]
    ) -> None:
        self.window_s = window_s
        self.max_items = max_items
        self._send = send
        self._open: dict[str, _Group[T]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, key: str, item: T) -> Outcome:
        if self.window_s <= 0:
            return await self._send([item])
        group = self._open.get(key)
        if group is None:
            group = self._open[key] = _Group()
            task = asyncio.get_running_loop().create_task(self._flush_later(key, group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        group.items.append(item)
        group.futures.append(future)
        if len(group.items) >= self.max_items:
            self._open.pop(key, None)
        return await asyncio.shield(future)

    async def _flush_later(self, key: str, group: _Group[T]) -> None:
        await asyncio.sleep(self.window_s)
        if self._open.get(key) is group:
            del self._open[key]
        try:
            outcome = await self._send(list(group.items))
        except Exception as e:
            outcome = failed(f"notification failed: {describe(e)}")
        if len(group.items) > 1 and isinstance(outcome.result, dict):
            outcome = Outcome(
                outcome.succeeded,
                {**outcome.result, "grouped": len(group.items)},
                outcome.error,
                outcome.retryable,
            )
        for future in group.futures:
            if not future.done():
                future.set_result(outcome)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# -- HTTP delivery ----------------------------------------------------------------------------


class HttpDelivery:
    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient()
        return self._client

    async def post(
        self, url: str, body: bytes, headers: dict[str, str], timeout_s: float, attempt: int
    ) -> Outcome:
        endpoint = endpoint_of(url)
        started = time.perf_counter()
        result: dict[str, Any] = {"endpoint": endpoint, "attempt": attempt, "delivered": False}
        try:
            response = await self.client().post(
                url,
                content=body,
                headers={"Content-Type": "application/json", **headers},
                timeout=timeout_s,
            )
        except httpx.TimeoutException:
            result["latency_ms"] = _ms(started)
            return failed(f"{endpoint} timed out after {timeout_s:g}s", result=result)
        except httpx.HTTPError as e:
            result["latency_ms"] = _ms(started)
            return failed(f"{endpoint} unreachable: {describe(e)}", result=result)
        result.update(status=response.status_code, latency_ms=_ms(started))
        if 200 <= response.status_code < 300:
            result["delivered"] = True
            return Outcome(succeeded=True, result=result)
        retryable = response.status_code >= 500 or response.status_code in (408, 429)
        return failed(
            f"HTTP {response.status_code} from {endpoint}", result=result, retryable=retryable
        )

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
