"""The circuit breaker in front of the store: opens after failures in a row, fails fast while
open, lets one probe through after the cool-down, and closes when the database answers."""

from __future__ import annotations

import asyncio

import pytest

from faena.domain.errors import NotFound, Unavailable
from faena.domain.jobs import JobSpec
from faena.ports.store import SubmitParams
from faena.services.breaker import BreakerState, CircuitBreaker, GuardedStore, guarded
from faena.testing import MemoryStore


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class FlakyStore:
    """Answers ``ping`` unless told the database is down; counts the calls that reached it."""

    supports_notify = False

    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    async def ping(self) -> None:
        self.calls += 1
        if self.down:
            raise Unavailable("PostgreSQL at db:5432 is unavailable while pinging: refused")

    async def get(self, tenant: str, job_id: str) -> None:
        self.calls += 1
        raise NotFound(job_id)

    async def close(self) -> None:
        self.calls += 1

    async def slow(self) -> None:
        await asyncio.sleep(10)


def breaker_and_store(
    failures: int = 3, reset_s: float = 2.0
) -> tuple[CircuitBreaker, FlakyStore, FakeClock, GuardedStore]:
    clock = FakeClock()
    breaker = CircuitBreaker(failures=failures, reset_s=reset_s, clock=clock)
    store = FlakyStore()
    return breaker, store, clock, GuardedStore(store, breaker)  # type: ignore[arg-type]


async def fail_n(store: GuardedStore, n: int) -> None:
    for _ in range(n):
        with pytest.raises(Unavailable):
            await store.ping()


async def test_it_opens_after_the_threshold_of_failures_in_a_row() -> None:
    breaker, inner, _, store = breaker_and_store(failures=3)
    inner.down = True

    await fail_n(store, 2)
    assert breaker.state is BreakerState.CLOSED
    await fail_n(store, 1)

    assert breaker.state is BreakerState.OPEN
    assert inner.calls == 3


async def test_an_open_breaker_fails_fast_without_calling_the_store_and_says_why() -> None:
    _, inner, _, store = breaker_and_store(failures=1)
    inner.down = True
    await fail_n(store, 1)

    with pytest.raises(Unavailable) as caught:
        await store.ping()

    assert inner.calls == 1
    assert "the database is unavailable" in caught.value.message
    assert "db:5432" in caught.value.message
    assert "retrying in 2.0s" in caught.value.message


async def test_a_success_resets_the_count_of_failures() -> None:
    breaker, inner, _, store = breaker_and_store(failures=3)
    inner.down = True
    await fail_n(store, 2)
    inner.down = False
    await store.ping()
    inner.down = True
    await fail_n(store, 2)

    assert breaker.state is BreakerState.CLOSED


async def test_a_refusal_from_the_database_counts_as_reaching_it() -> None:
    breaker, inner, _, store = breaker_and_store(failures=2)
    inner.down = True
    await fail_n(store, 1)

    with pytest.raises(NotFound):
        await store.get("t", "j")
    await fail_n(store, 1)

    assert breaker.state is BreakerState.CLOSED


async def test_after_the_cool_down_one_probe_goes_through_and_closes_it() -> None:
    breaker, inner, clock, store = breaker_and_store(failures=1, reset_s=2.0)
    inner.down = True
    await fail_n(store, 1)
    inner.down = False
    clock.t += 2.0

    await store.ping()

    assert breaker.state is BreakerState.CLOSED
    assert inner.calls == 2


async def test_a_failed_probe_opens_it_for_another_cool_down() -> None:
    breaker, inner, clock, store = breaker_and_store(failures=1, reset_s=2.0)
    inner.down = True
    await fail_n(store, 1)
    clock.t += 2.0

    await fail_n(store, 1)  # the probe
    assert breaker.state is BreakerState.OPEN
    await fail_n(store, 1)  # fails fast again

    assert inner.calls == 2
    clock.t += 2.0
    inner.down = False
    await store.ping()
    assert breaker.state is BreakerState.CLOSED


async def test_while_a_probe_is_in_flight_other_calls_fail_fast() -> None:
    breaker, inner, clock, store = breaker_and_store(failures=1)
    inner.down = True
    await fail_n(store, 1)
    clock.t += 5
    inner.down = False
    probe = asyncio.ensure_future(store.slow())
    await asyncio.sleep(0)

    with pytest.raises(Unavailable, match="checking whether it is back"):
        await store.ping()

    probe.cancel()  # a cancelled probe frees the slot for the next caller
    with pytest.raises(asyncio.CancelledError):
        await probe
    await store.ping()
    assert breaker.state is BreakerState.CLOSED


async def test_close_and_plain_attributes_bypass_the_breaker() -> None:
    _, inner, _, store = breaker_and_store(failures=1)
    inner.down = True
    await fail_n(store, 1)

    await store.close()

    assert inner.calls == 2
    assert store.supports_notify is False


async def test_a_guarded_store_is_still_a_working_store() -> None:
    store = guarded(MemoryStore(), CircuitBreaker())
    await store.open()
    [submitted] = await store.submit_many(
        SubmitParams(specs=[JobSpec(kind="noop")], ids=["j1"], now=1.0)
    )

    assert (await store.get("default", "j1")) == submitted.job
