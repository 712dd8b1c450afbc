"""The outbox relay and outbound webhooks.

Run, step and workflow events are written to the outbox in the transaction of their change. So
are job state events on SQLite and PostgreSQL, for tenants with a subscription that wants them:
database triggers on ``jobs`` (migrations sqlite 0013, postgres 0014) write them in the statement
that changes the job (the store says so with ``job_events_in_outbox``). The in-memory store has
no such hook: there a bus listener appends them right after the change (nothing survives a crash
of that store anyway). The relay turns outbox events into one delivery per
matching subscription (``dispatch_outbox``, in one transaction), then delivers due deliveries:
``POST`` the event as JSON, signed (:mod:`faena.domain.signatures`). A 2xx marks it delivered;
anything else is retried with exponential backoff and jitter, and after ``max_attempts`` the
delivery is dead: listed by ``GET /v1/deliveries?state=dead`` and re-driven by
``POST /v1/deliveries/{id}/redrive``. A per-endpoint circuit breaker stops hammering a receiver
that keeps failing. Delivery is at-least-once; receivers de-duplicate on the event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import orjson
import structlog

from faena.domain.errors import ValidationError
from faena.domain.events import Event
from faena.domain.ids import new_id
from faena.domain.runs import Delivery, DeliveryState, OutboxEvent, Subscription
from faena.domain.signatures import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)
from faena.ports.bus import EventBus
from faena.ports.clock import Clock, Jitter, system_jitter
from faena.ports.workflows import (
    ClaimDeliveriesParams,
    DispatchOutboxParams,
    ListDeliveriesParams,
    RecordDeliveryParams,
    WorkflowStore,
)

log = structlog.get_logger("faena.webhooks")

MAX_EVENT_PATTERNS = 20
RELAY_GAP_S = 0.05  # at most 20 relays a second, however many events wake it
EVENT_TYPES = ("workflow.applied", "run.state", "step.state", "job.state")


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    max_attempts: int = 8
    backoff_s: float = 1.0
    backoff_max_s: float = 3600.0
    timeout_s: float = 10.0
    lease_s: float = 60.0  # a claimed delivery is invisible to other servers meanwhile
    breaker_failures: int = 5  # consecutive failures that open an endpoint's breaker
    breaker_open_s: float = 30.0
    batch: int = 100


def backoff(policy: DeliveryPolicy, attempts: int, jitter: float) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: exponential, capped,
    with "equal jitter" (half fixed, half random)."""
    delay = min(policy.backoff_max_s, policy.backoff_s * 2.0 ** max(attempts - 1, 0))
    return delay / 2 + delay / 2 * jitter


class CircuitBreaker:
    """Per endpoint (scheme://host:port): open after N consecutive failures, for a while."""

    def __init__(self, failures: int, open_s: float) -> None:
        self.failures = failures
        self.open_s = open_s
        self._count: dict[str, int] = {}
        self._open_until: dict[str, float] = {}

    @staticmethod
    def endpoint(url: str) -> str:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}"

    def allows(self, url: str, now: float) -> bool:
        return self._open_until.get(self.endpoint(url), 0.0) <= now

    def record(self, url: str, ok: bool, now: float) -> None:
        key = self.endpoint(url)
        if ok:
            self._count.pop(key, None)
            self._open_until.pop(key, None)
            return
        self._count[key] = self._count.get(key, 0) + 1
        if self._count[key] >= self.failures:
            self._open_until[key] = now + self.open_s


def check_subscription(url: str, events: Sequence[str]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError("url must be an http:// or https:// URL")
    if not events or len(events) > MAX_EVENT_PATTERNS:
        raise ValidationError(f"events must list 1 to {MAX_EVENT_PATTERNS} patterns")
    for pattern in events:
        known = (
            pattern == "*"
            or pattern in EVENT_TYPES
            or (pattern.endswith(".*") and any(t.startswith(pattern[:-1]) for t in EVENT_TYPES))
        )
        if not known:
            raise ValidationError(
                f"unknown event pattern {pattern!r}; use *, {', '.join(EVENT_TYPES)} or "
                "a prefix such as run.*"
            )


class Webhooks:
    """Subscriptions, the outbox relay and the deliverer."""

    def __init__(
        self,
        store: WorkflowStore,
        bus: EventBus,
        clock: Clock,
        *,
        poll_s: float = 0.5,
        policy: DeliveryPolicy | None = None,
        jitter: Jitter = system_jitter,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.poll_s = poll_s
        self.policy = policy or DeliveryPolicy()
        self.jitter = jitter
        self.breaker = CircuitBreaker(self.policy.breaker_failures, self.policy.breaker_open_s)
        self._transport = transport
        self._subs: dict[str, tuple[float, list[Subscription]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        # The store writes job.state events in the change's own transaction: copying them from
        # the bus as well would record each twice (once per server on PostgreSQL).
        self.copy_job_events = not getattr(store, "job_events_in_outbox", False)

    # -- subscriptions -----------------------------------------------------------------------

    async def subscribe(self, tenant: str, url: str, events: Sequence[str]) -> Subscription:
        check_subscription(url, events)
        sub = Subscription(
            id=new_id(),
            tenant=tenant,
            url=url,
            events=tuple(events),
            secret="whsec_" + secrets.token_urlsafe(32),
            created_at=self.clock.now(),
        )
        await self.store.create_subscription(sub)
        self._subs.pop(tenant, None)
        return sub

    async def subscriptions(self, tenant: str, *, fresh: bool = True) -> list[Subscription]:
        cached = self._subs.get(tenant)
        if not fresh and cached is not None and cached[0] > time.monotonic():
            return cached[1]
        found = await self.store.list_subscriptions(tenant)
        self._subs[tenant] = (time.monotonic() + 5.0, found)
        return found

    async def unsubscribe(self, tenant: str, subscription_id: str) -> None:
        await self.store.delete_subscription(tenant, subscription_id)
        self._subs.pop(tenant, None)

    async def deliveries(
        self, tenant: str, state: DeliveryState | None, limit: int
    ) -> list[Delivery]:
        return await self.store.list_deliveries(ListDeliveriesParams(tenant, state, limit))

    async def redrive(self, tenant: str, delivery_id: str) -> Delivery:
        found = await self.store.redrive_delivery(tenant, delivery_id, self.clock.now())
        self._wake.set()
        return found

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._client = httpx.AsyncClient(
            timeout=self.policy.timeout_s, transport=self._transport, follow_redirects=False
        )
        self._tasks = [
            loop.create_task(self._relay_forever(), name="webhooks-relay"),
            loop.create_task(self._job_events(), name="webhooks-job-events"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._client.aclose()

    async def _relay_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            self._wake.clear()  # before the relay: what is written meanwhile wakes the next one
            try:
                await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("webhook relay failed", error=repr(e))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self._wake.wait()
            # Busy workflows write step events all the time: one relay per gap, not per event.
            gap = RELAY_GAP_S - (loop.time() - started)
            if gap > 0:
                await asyncio.sleep(gap)

    async def _job_events(self) -> None:
        """Wake the relay for the events a subscription wants, and copy job state changes into
        the outbox where the store does not write them itself (the in-memory store)."""
        with closing(self.bus.subscribe(where=self._may_want)) as sub:
            while True:
                event = await sub.get()
                try:
                    await self._event(event)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # the store is down: this event is lost, not the loop
                    log.warning("recording a job event failed", error=repr(e))

    def _may_want(self, event: Event) -> bool:
        """The bus filter: events of tenants that may have a subscription wanting them (unknown
        or stale tenants are asked in ``_event``), so busy queues and workflows nobody
        subscribed to cost one dict lookup per event, and no relay."""
        if event.type not in EVENT_TYPES:
            return False
        cached = self._subs.get(event.tenant)
        if cached is None or cached[0] <= time.monotonic():
            return True
        return any(s.matches(event.type) for s in cached[1])

    async def _event(self, event: Event) -> None:
        subs = await self.subscriptions(event.tenant, fresh=False)
        if not any(s.matches(event.type) for s in subs):
            return
        if event.type == "job.state" and self.copy_job_events:
            data = {"job_id": event.job_id, **event.data}
            await self.store.append_events([OutboxEvent("job.state", event.tenant, data, event.ts)])
        self._wake.set()  # the store wrote it in the change's transaction, or we just did

    # -- relay and delivery ------------------------------------------------------------------

    async def relay_once(self) -> int:
        """Dispatch the outbox, then attempt every due delivery once; return the attempts."""
        now = self.clock.now()
        while await self.store.dispatch_outbox(DispatchOutboxParams(now=now)) > 0:
            pass
        due = await self.store.claim_deliveries(
            ClaimDeliveriesParams(now=now, lease_s=self.policy.lease_s, limit=self.policy.batch)
        )
        if not due:
            return 0
        by_id: dict[str, Subscription] = {}
        for tenant in {d.tenant for d in due}:
            for s in await self.subscriptions(tenant):
                by_id[s.id] = s
        await asyncio.gather(*(self._attempt(d, by_id.get(d.subscription_id)) for d in due))
        return len(due)

    async def _attempt(self, delivery: Delivery, sub: Subscription | None) -> None:
        now = self.clock.now()
        if sub is None:
            await self._record(delivery, DeliveryState.DEAD, now, None, "subscription deleted")
            return
        if not self.breaker.allows(sub.url, now):
            return  # claimed: it comes back when its lease passes, after the breaker closed
        body = orjson.dumps(delivery.body)
        ts = int(now)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "faena-webhooks",
            EVENT_ID_HEADER: str(delivery.body.get("id")),
            EVENT_TYPE_HEADER: delivery.event_type,
            TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: sign(sub.secret, ts, body),
        }
        status: int | None = None
        error: str | None = None
        try:
            response = await self._client.post(sub.url, content=body, headers=headers)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}"[:500]
        done = self.clock.now()
        self.breaker.record(sub.url, error is None, done)
        if error is None:
            await self._record(delivery, DeliveryState.DELIVERED, done, status, None)
        elif delivery.attempts + 1 >= self.policy.max_attempts:
            await self._record(delivery, DeliveryState.DEAD, done, status, error)
        else:
            delay = backoff(self.policy, delivery.attempts + 1, self.jitter())
            await self._record(delivery, DeliveryState.PENDING, done + delay, status, error)

    async def _record(
        self,
        delivery: Delivery,
        state: DeliveryState,
        next_attempt_at: float,
        status: int | None,
        error: str | None,
    ) -> None:
        await self.store.record_delivery(
            RecordDeliveryParams(
                delivery_id=delivery.id,
                attempts=delivery.attempts,
                state=state,
                next_attempt_at=next_attempt_at,
                now=self.clock.now(),
                status=status,
                error=error,
            )
        )
