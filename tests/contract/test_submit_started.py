"""Submitting jobs straight to a free local slot (``SubmitParams.start``): the jobs it names are
stored claimed, in the submit's own transaction, and behave from then on like claimed jobs."""

from __future__ import annotations

from faena.domain.ids import new_id
from faena.domain.jobs import JobSpec, JobState
from faena.ports.store import (
    ExpireLeasesParams,
    ExtendLeasesParams,
    JobStore,
    LeaseRef,
    StartNow,
    SubmitParams,
)
from tests.contract.support import LEASE_S, NOW, claim, complete, submit_one


def _start(*ids: str, worker_id: str = "local") -> StartNow:
    return StartNow(worker_id=worker_id, lease_s=LEASE_S, ids=frozenset(ids))


async def test_started_jobs_are_stored_claimed_and_the_rest_queued(store: JobStore) -> None:
    """The named jobs are running for the worker, attempt 1, leased from now; the others queued,
    and what submit returns is what get reads back."""
    ids = [new_id() for _ in range(3)]
    specs = [JobSpec(kind="noop", payload={"n": i}) for i in range(3)]
    submitted = await store.submit_many(SubmitParams(specs, ids, NOW, _start(ids[0], ids[2])))
    first, second, third = (s.job for s in submitted)
    assert all(s.created for s in submitted)
    for job in (first, third):
        assert job.state is JobState.RUNNING
        assert (job.attempts, job.worker_id, job.started_at) == (1, "local", NOW)
        assert job.lease_expires_at == NOW + LEASE_S
        assert job.run_at is None and job.finished_at is None
    assert second.state is JobState.QUEUED and second.attempts == 0 and second.worker_id is None
    for job in (first, second, third):
        assert await store.get("default", job.id) == job


async def test_a_claim_does_not_take_started_jobs(store: JobStore) -> None:
    """Another claimer finds only the queued job: a started job is never claimed twice."""
    ids = [new_id(), new_id()]
    await store.submit_many(
        SubmitParams([JobSpec(kind="noop"), JobSpec(kind="noop")], ids, NOW, _start(ids[0]))
    )
    claimed = await claim(store, 10, worker_id="other")
    assert [j.id for j in claimed] == [ids[1]]


async def test_a_started_job_completes_renews_and_expires_like_a_claimed_one(
    store: JobStore,
) -> None:
    """Its attempt fences completions, its worker renews its lease, and a lapsed lease sends it
    back to the queue while attempts are left."""
    ids = [new_id(), new_id()]
    specs = [JobSpec(kind="noop"), JobSpec(kind="noop", max_attempts=2)]
    done, lapsing = (
        s.job for s in await store.submit_many(SubmitParams(specs, ids, NOW, _start(*ids)))
    )
    (finished,) = await complete(store, done, JobState.SUCCEEDED, result={"ok": True})
    assert finished.state is JobState.SUCCEEDED and finished.result == {"ok": True}
    held = await store.extend_leases(
        ExtendLeasesParams("local", [LeaseRef(lapsing.id, 1)], LEASE_S, NOW + 10)
    )
    assert held == [lapsing.id]
    (expired,) = await store.expire_leases(ExpireLeasesParams(now=NOW + 10 + LEASE_S + 1))
    assert expired.id == lapsing.id and expired.state is JobState.QUEUED
    (again,) = await claim(store, 1, now=NOW + 100)
    assert (again.id, again.attempts) == (lapsing.id, 2)


async def test_an_idempotent_submit_does_not_start_the_earlier_job(store: JobStore) -> None:
    """A key already taken returns the earlier job untouched, even when named to start."""
    first = await submit_one(store, idempotency_key="order-7")
    job_id = new_id()
    spec = JobSpec(kind="noop", idempotency_key="order-7")
    (again,) = await store.submit_many(SubmitParams([spec], [job_id], NOW, _start(job_id)))
    assert again.created is False and again.job == first
    assert (await store.get("default", first.id)) == first


async def test_started_jobs_count_as_running(store: JobStore) -> None:
    """Stats see a started job as running from its submit on."""
    job_id = new_id()
    await store.submit_many(SubmitParams([JobSpec(kind="noop")], [job_id], NOW, _start(job_id)))
    stats = await store.stats("default")
    assert stats.by_state.get("running") == 1
    assert not stats.by_state.get("queued")
