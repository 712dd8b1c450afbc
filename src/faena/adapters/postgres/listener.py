"""Changes other servers committed, heard over LISTEN/NOTIFY: the PostgreSQL change feed.

Migration 0003 makes the database announce every job state change and every batch of log chunks
with ``NOTIFY`` in the transaction that made it, batched per statement (see its header for the
payload). One dedicated connection per server LISTENs on the deployment's channel; each
notification from another server (its origin differs from ours) becomes ``Event`` objects for
the local bus, and a job that became runnable (queued, or scheduled for later) wakes the local
claim loop. When the connection drops, the feed reconnects with backoff and then wakes the
claim loop once, since anything submitted meanwhile went unheard; live streams fall back to
polling in the meantime, so nothing waits on a notification that was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog

from faena.adapters.postgres.errors import server_address
from faena.domain.events import Event

log = structlog.get_logger("faena.listener")

PAYLOAD_VERSION = "faena1"
_RUNNABLE = frozenset({"queued", "scheduled"})
_STATES = frozenset({"queued", "scheduled", "running", "succeeded", "failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class Notification:
    """One decoded payload: who wrote it, the events it carries, whether work became runnable."""

    origin: str
    events: list[Event] = field(default_factory=list)
    runnable: bool = False


def decode(payload: str, ts: float) -> Notification | None:
    """A payload of migration 0003's triggers as events; None when it is not one."""
    header, _, body = payload.partition("\n")
    version, _, origin = header.partition(" ")
    if version != PAYLOAD_VERSION or not origin:
        return None
    events: list[Event] = []
    runnable = False
    for line in body.split("\n"):
        parts = line.split(" ", 3)
        if len(parts) != 4:
            continue
        what, number, tenant, job_id = parts
        try:
            n = int(number)
        except ValueError:
            continue
        if what == "log":
            events.append(Event("job.log", tenant, job_id, {"seq": n}, ts))
        elif what in _STATES:
            events.append(Event("job.state", tenant, job_id, {"state": what, "attempts": n}, ts))
            runnable = runnable or what in _RUNNABLE
    return Notification(origin, events, runnable)


class PostgresChangeFeed:
    """The ``ChangeFeed`` port on one asyncpg connection with ``add_listener``."""

    def __init__(
        self,
        dsn: str,
        *,
        channel: str,
        origin: str,
        connect_timeout: float = 10.0,
        check_s: float = 10.0,
        backoff_min_s: float = 0.1,
        backoff_max_s: float = 5.0,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._dsn = dsn
        self._address = server_address(dsn)
        self.channel = channel
        self.origin = origin
        self._connect_timeout = connect_timeout
        self._check_s = check_s
        self._backoff_min_s = backoff_min_s
        self._backoff_max_s = backoff_max_s
        self._jitter = jitter
        self._deliver: Callable[[Sequence[Event]], None] = lambda events: None
        self._wake: Callable[[], None] = lambda: None
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None
        self._connected = asyncio.Event()
        self._ever_connected = False
        self.notifications = 0  # from other servers
        self.reconnects = 0

    # -- the port ---------------------------------------------------------------------------

    def start(self, deliver: Callable[[Sequence[Event]], None], wake: Callable[[], None]) -> None:
        self._deliver = deliver
        self._wake = wake
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="pg-listener")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
        return self.connected

    # -- the connection ---------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self._backoff_min_s
        failures = 0  # connection attempts in a row that did not get to LISTEN
        while True:
            try:
                await self._listen()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                if self.connected or failures == 0:  # once per outage, not once per attempt
                    log.warning(
                        "listener lost the database; reconnecting with backoff"
                        if self.connected
                        else "listener cannot reach the database; retrying with backoff",
                        server=self._address,
                        error=(str(e).splitlines() or [type(e).__name__])[0],
                    )
            except Exception:  # a bug must not silence the feed for good
                log.exception("listener failed; restarting it", server=self._address)
            finally:
                if self.connected:
                    failures, delay = 0, self._backoff_min_s
                else:
                    failures += 1
                self._connected.clear()
                await self._close()
            await asyncio.sleep(delay * (0.5 + self._jitter()))
            delay = min(delay * 2, self._backoff_max_s)

    async def _listen(self) -> None:
        conn = await asyncpg.connect(
            self._dsn,
            timeout=self._connect_timeout,
            server_settings={"application_name": "faena-listener"},
        )
        self._conn = conn
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_terminated(_conn: Any) -> None:
            if not lost.done():
                lost.set_result(None)

        conn.add_termination_listener(on_terminated)
        await conn.add_listener(self.channel, self._on_notify)
        self._connected.set()
        if self._ever_connected:
            self.reconnects += 1
            log.info("listener reconnected", server=self._address, channel=self.channel)
        self._ever_connected = True
        # What was submitted while nobody listened went unheard: look for it once.
        self._wake()
        while not lost.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._check_s):
                    await asyncio.shield(lost)
            if not lost.done():  # a silent connection may be a dead one (no FIN, no RST)
                await conn.fetchval("SELECT 1", timeout=self._connect_timeout)
        raise asyncpg.InterfaceError("the listening connection was closed")

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            async with asyncio.timeout(1.0):
                await conn.close()
        except Exception:
            conn.terminate()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload.startswith(self._own_prefix):  # our own services already published these
            return
        try:
            notification = decode(payload, time.time())
        except Exception:  # a foreign or corrupt payload must not stop the feed
            log.exception("undecodable notification", channel=self.channel)
            return
        if notification is None:
            return
        self.notifications += 1
        if notification.runnable:
            self._wake()
        if notification.events:
            self._deliver(notification.events)

    @property
    def _own_prefix(self) -> str:
        return f"{PAYLOAD_VERSION} {self.origin}\n"
