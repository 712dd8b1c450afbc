"""The in-process event bus."""

from __future__ import annotations

from faena.adapters.local_bus import LocalBus
from faena.domain.events import Event


def _event(tenant: str = "t", job_id: str | None = "j1") -> Event:
    return Event(type="job.state", tenant=tenant, job_id=job_id)


async def test_a_subscriber_sees_only_its_tenant() -> None:
    bus = LocalBus()
    sub = bus.subscribe(tenant="a")
    bus.publish([_event("b"), _event("a")])
    assert (await sub.get()).tenant == "a"
    assert sub.queue.empty()


async def test_a_job_subscriber_sees_only_that_job() -> None:
    bus = LocalBus()
    sub = bus.subscribe(job_id="j2")
    bus.publish([_event(job_id="j1"), _event(job_id="j2")])
    assert (await sub.get()).job_id == "j2"
    assert sub.queue.empty()


async def test_a_slow_subscriber_drops_the_oldest_events_and_never_blocks() -> None:
    bus = LocalBus(queue_size=2)
    sub = bus.subscribe()
    bus.publish([_event(job_id=str(i)) for i in range(5)])
    assert sub.dropped == 3
    assert [(await sub.get()).job_id for _ in range(2)] == ["3", "4"]


async def test_a_closed_subscription_receives_nothing() -> None:
    bus = LocalBus()
    sub = bus.subscribe(job_id="j1")
    sub.close()
    bus.publish([_event()])
    assert sub.queue.empty()


async def test_a_filtered_subscriber_queues_only_what_its_filter_accepts() -> None:
    """``where`` runs at publish time: rejected events never reach the subscriber's queue."""
    bus = LocalBus()
    sub = bus.subscribe(where=lambda e: e.job_id == "j2")
    everything = bus.subscribe()
    bus.publish([_event(job_id="j1"), _event(job_id="j2"), _event(job_id="j3")])
    assert (await sub.get()).job_id == "j2"
    assert sub.queue.empty()
    assert everything.queue.qsize() == 3


async def test_a_closed_broad_subscription_receives_nothing() -> None:
    bus = LocalBus()
    sub = bus.subscribe()
    sub.close()
    bus.publish([_event()])
    assert sub.queue.empty()
