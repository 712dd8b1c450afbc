"""Leases: heartbeats extend them, the fencing attempt guards them, expiry recovers jobs."""

from __future__ import annotations

from faena.domain.jobs import JobState
from faena.ports.store import (
    CancelParams,
    ExpireLeasesParams,
    ExtendLeasesParams,
    JobStore,
    LeaseRef,
)
from tests.contract.support import LEASE_S, NOW, claim, start_one, submit_one


def extend(worker_id: str, *refs: LeaseRef, now: float = NOW + 10) -> ExtendLeasesParams:
    return ExtendLeasesParams(worker_id=worker_id, leases=list(refs), lease_s=LEASE_S, now=now)


async def test_extend_leases_pushes_the_lease_forward(store: JobStore) -> None:
    """A held lease ends lease_s after the heartbeat, and its id is returned."""
    job = await start_one(store)
    extended = await store.extend_leases(extend("w1", LeaseRef(job.id, 1), now=NOW + 10))
    assert extended == [job.id]
    stored = await store.get("default", job.id)
    assert stored is not None and stored.lease_expires_at == NOW + 10 + LEASE_S


async def test_extend_leases_ignores_a_stale_attempt(store: JobStore) -> None:
    """A worker still heartbeating an attempt that was taken from it gets nothing extended."""
    job = await start_one(store, max_attempts=3)
    await store.expire_leases(ExpireLeasesParams(now=NOW + LEASE_S + 1))
    (again,) = await claim(store, worker_id="w1", now=NOW + LEASE_S + 2)
    assert again.attempts == 2
    assert await store.extend_leases(extend("w1", LeaseRef(job.id, 1))) == []
    stored = await store.get("default", job.id)
    assert stored is not None and stored.lease_expires_at == again.lease_expires_at


async def test_extend_leases_ignores_a_cancelled_job(store: JobStore) -> None:
    """A cancelled job's lease is gone; the heartbeat does not revive it."""
    job = await start_one(store)
    await store.cancel(CancelParams("default", job.id, NOW + 1))
    assert await store.extend_leases(extend("w1", LeaseRef(job.id, 1))) == []


async def test_extend_leases_ignores_another_workers_job(store: JobStore) -> None:
    """Only the worker holding the lease can extend it."""
    job = await start_one(store)
    assert await store.extend_leases(extend("w2", LeaseRef(job.id, 1))) == []


async def test_extend_leases_returns_only_the_leases_still_held(store: JobStore) -> None:
    """In one call, held leases are extended and unknown or stale ones are skipped."""
    job = await start_one(store)
    refs = [LeaseRef(job.id, 1), LeaseRef(job.id, 2), LeaseRef("no-such-job", 1)]
    assert await store.extend_leases(extend("w1", *refs)) == [job.id]


async def test_expired_lease_requeues_a_job_with_attempts_left(store: JobStore) -> None:
    """Past its lease, a job with attempts left is queued again, saying why."""
    job = await start_one(store, max_attempts=2)
    (expired,) = await store.expire_leases(ExpireLeasesParams(now=NOW + LEASE_S + 1))
    assert expired.id == job.id
    assert expired.state is JobState.QUEUED
    assert expired.error == "lease expired (worker w1 stopped heartbeating)"
    assert expired.lease_expires_at is None and expired.finished_at is None
    (again,) = await claim(store, worker_id="w2", now=NOW + LEASE_S + 2)
    assert (again.id, again.attempts, again.worker_id) == (job.id, 2, "w2")


async def test_expired_lease_fails_a_job_without_attempts_left(store: JobStore) -> None:
    """Past its lease, a job on its last attempt fails for good."""
    job = await start_one(store, max_attempts=1)
    (expired,) = await store.expire_leases(ExpireLeasesParams(now=NOW + LEASE_S + 1))
    assert expired.id == job.id
    assert expired.state is JobState.FAILED
    assert expired.finished_at == NOW + LEASE_S + 1
    assert expired.error is not None and "lease expired" in expired.error


async def test_lease_still_running_is_not_expired(store: JobStore) -> None:
    """A lease that has not ended yet (or ends exactly now) is kept."""
    await start_one(store)
    assert await store.expire_leases(ExpireLeasesParams(now=NOW + LEASE_S)) == []


async def test_expire_leases_takes_at_most_limit_jobs(store: JobStore) -> None:
    """Expiry works in bounded batches."""
    for _ in range(3):
        await submit_one(store)
    await claim(store, 3)
    expired = await store.expire_leases(ExpireLeasesParams(now=NOW + LEASE_S + 1, limit=2))
    assert len(expired) == 2
    rest = await store.expire_leases(ExpireLeasesParams(now=NOW + LEASE_S + 1, limit=2))
    assert len(rest) == 1
