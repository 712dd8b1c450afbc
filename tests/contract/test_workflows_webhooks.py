"""The outbox and outbound webhooks on every store: events written with their change, one
delivery per matching subscription, signed, retried with backoff, dead after the last attempt,
re-driven; two relays never deliver one event twice."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import orjson
import pytest

from faena.domain.errors import Conflict, NotFound, ValidationError
from faena.domain.jobs import JobState
from faena.domain.runs import DeliveryState
from faena.domain.signatures import verify
from faena.services.deliveries import DeliveryPolicy, Webhooks, backoff
from faena.services.orchestrator import JobRequest, state_event
from tests.contract.workflow_support import TENANT, Harness

FLOW = "name: w\nsteps: [{id: a, kind: noop}]\n"


class Receiver:
    """An httpx transport that records requests and answers with scripted statuses."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.statuses.pop(0) if self.statuses else 200)

    def bodies(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.content) for r in self.requests]


@pytest.fixture
def h(store: Any) -> Harness:
    return Harness(store)


def hooks(h: Harness, receiver: Receiver, **policy: Any) -> Webhooks:
    w = Webhooks(
        h.store,
        h.bus,
        h.clock,
        policy=DeliveryPolicy(**policy),
        jitter=lambda: 0.0,
        transport=httpx.MockTransport(receiver),
    )
    w._client = httpx.AsyncClient(transport=httpx.MockTransport(receiver))
    return w


async def test_run_events_are_delivered_signed(h: Harness) -> None:
    receiver = Receiver()
    w = hooks(h, receiver)
    sub = await w.subscribe(TENANT, "http://hooks.test/in", ["run.*"])
    await h.apply(FLOW)
    run = await h.drive(await h.start("w"))
    assert await w.relay_once() == 2  # run.state running, then succeeded
    bodies = receiver.bodies()
    assert [b["data"]["state"] for b in bodies] == ["running", "succeeded"]
    assert {b["data"]["run_id"] for b in bodies} == {run.id}
    assert len({b["id"] for b in bodies}) == 2
    for request in receiver.requests:
        assert (
            verify(
                sub.secret,
                request.headers["X-Faena-Timestamp"],
                request.headers["X-Faena-Signature"],
                request.content,
                h.clock.now(),
            )
            is None
        )
        assert request.headers["X-Faena-Event-Type"] == "run.state"
    assert await w.relay_once() == 0
    delivered = await w.deliveries(TENANT, DeliveryState.DELIVERED, 10)
    assert len(delivered) == 2 and all(d.last_status == 200 for d in delivered)


async def test_a_failed_delivery_is_retried_with_backoff_then_dead_then_redriven(
    h: Harness,
) -> None:
    receiver = Receiver(500, 500, 500)
    w = hooks(h, receiver, max_attempts=3, backoff_s=10)
    await w.subscribe(TENANT, "http://hooks.test/in", ["workflow.applied"])
    await h.apply(FLOW)
    assert await w.relay_once() == 1
    [pending] = await w.deliveries(TENANT, DeliveryState.PENDING, 10)
    assert pending.attempts == 1 and pending.last_status == 500
    assert pending.next_attempt_at == h.clock.now() + backoff(DeliveryPolicy(backoff_s=10), 1, 0)
    assert await w.relay_once() == 0  # not due yet
    h.clock.t += 5
    assert await w.relay_once() == 1
    h.clock.t += 10
    assert await w.relay_once() == 1
    [dead] = await w.deliveries(TENANT, DeliveryState.DEAD, 10)
    assert dead.attempts == 3 and dead.last_error == "HTTP 500"
    again = await w.redrive(TENANT, dead.id)
    assert again.state is DeliveryState.PENDING and again.attempts == 0
    assert await w.relay_once() == 1
    [ok] = await w.deliveries(TENANT, DeliveryState.DELIVERED, 10)
    assert ok.id == dead.id and len({r.headers["X-Faena-Event-Id"] for r in receiver.requests}) == 1
    with pytest.raises(Conflict):
        await w.redrive(TENANT, dead.id)
    with pytest.raises(NotFound):
        await w.redrive(TENANT, "nope")


async def test_two_relays_deliver_each_event_once(h: Harness) -> None:
    receiver = Receiver()
    a, b = hooks(h, receiver), hooks(h, receiver)
    await a.subscribe(TENANT, "http://hooks.test/in", ["*"])
    for i in range(5):
        await h.apply(FLOW.replace("name: w", f"name: w{i}"))
    await asyncio.gather(a.relay_once(), b.relay_once())
    await asyncio.gather(a.relay_once(), b.relay_once())
    ids = [body["id"] for body in receiver.bodies()]
    assert len(ids) == 5 and len(set(ids)) == 5


async def test_the_circuit_breaker_stops_calling_a_failing_endpoint(h: Harness) -> None:
    receiver = Receiver(*([500] * 10))
    w = hooks(h, receiver, breaker_failures=2, breaker_open_s=60, backoff_s=0.001)
    await w.subscribe(TENANT, "http://hooks.test/in", ["*"])
    for i in range(4):
        await h.apply(FLOW.replace("name: w", f"name: w{i}"))
    await w.relay_once()
    first = len(receiver.requests)
    h.clock.t += 1
    await w.relay_once()
    assert len(receiver.requests) == first  # open: nothing sent


async def test_subscriptions_are_validated_and_deleted(h: Harness) -> None:
    w = hooks(h, Receiver())
    with pytest.raises(ValidationError):
        await w.subscribe(TENANT, "ftp://x", ["*"])
    with pytest.raises(ValidationError, match="unknown event pattern"):
        await w.subscribe(TENANT, "http://x", ["nope"])
    sub = await w.subscribe(TENANT, "https://x/y", ["job.*", "run.state"])
    assert [s.id for s in await w.subscriptions(TENANT)] == [sub.id]
    await w.unsubscribe(TENANT, sub.id)
    assert await w.subscriptions(TENANT) == []
    with pytest.raises(NotFound):
        await w.unsubscribe(TENANT, sub.id)


async def test_job_state_events_reach_the_outbox_once_each_for_subscribed_tenants(
    h: Harness,
) -> None:
    """SQLite and PostgreSQL write them in the job's own statement (triggers), so the bus
    listener must not add a second copy; the in-memory store relies on that listener."""
    receiver = Receiver()
    w = hooks(h, receiver)
    assert w.copy_job_events is not getattr(h.store, "job_events_in_outbox", False)
    listener = asyncio.get_running_loop().create_task(w._job_events())
    await asyncio.sleep(0)  # the listener subscribes before anything is published
    try:
        await w.subscribe(TENANT, "http://hooks.test/in", ["job.state"])
        [submitted] = await h.orchestrator.submit(TENANT, [JobRequest(kind="noop")])
        await h.orchestrator.submit("other", [JobRequest(kind="noop")])  # no subscription
        await h.work({"noop": 7})
        job = await h.store.get(TENANT, submitted.job.id)
        assert job is not None and job.state is JobState.SUCCEEDED
        h.bus.publish([state_event(job, h.clock.now())])  # as the completer does after commit
        for _ in range(50):  # the listener copies asynchronously (memory store only)
            await asyncio.sleep(0.01)
            if await w.relay_once() == 0 and len(receiver.requests) >= 3:
                break
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
    bodies = receiver.bodies()
    assert {b["type"] for b in bodies} == {"job.state"}
    assert {b["data"]["job_id"] for b in bodies} == {job.id}
    states = [b["data"]["state"] for b in bodies]
    assert sorted(states) == sorted(set(states))  # no event recorded twice
    if not w.copy_job_events:  # every transition, straight from the store
        assert states == ["queued", "running", "succeeded"]
        assert bodies[-1]["data"]["kind"] == "noop" and bodies[-1]["data"]["attempts"] == 1


async def test_the_delivery_backlog_counts_undispatched_events_and_pending_deliveries(
    h: Harness,
) -> None:
    w = hooks(h, Receiver(500))
    await w.subscribe(TENANT, "http://hooks.test/in", ["workflow.applied"])
    before = await h.store.delivery_backlog()
    await h.apply(FLOW)
    queued = await h.store.delivery_backlog()
    assert queued.outbox == before.outbox + 1 and queued.pending == before.pending
    assert await w.relay_once() == 1  # dispatched; the attempt got a 500: still pending
    after = await h.store.delivery_backlog()
    assert (after.outbox, after.pending) == (0, 1)
