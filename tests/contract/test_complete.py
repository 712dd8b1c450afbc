"""Completing attempts: outcomes are recorded once, and only for the attempt still running."""

from __future__ import annotations

import pytest

from faena.domain.errors import ValidationError
from faena.domain.jobs import JobState
from faena.ports.store import (
    CancelParams,
    CompleteParams,
    Completion,
    ExpireLeasesParams,
    JobStore,
)
from tests.contract.support import LEASE_S, NOW, claim, complete, start_one, submit_one


async def test_success_stores_the_result_and_finishes_the_job(store: JobStore) -> None:
    """succeeded: result kept, finished_at set, lease released."""
    job = await start_one(store)
    (done,) = await complete(store, job, JobState.SUCCEEDED, result={"total": 42}, now=NOW + 5)
    assert done.state is JobState.SUCCEEDED
    assert done.result == {"total": 42}
    assert done.finished_at == NOW + 5
    assert done.lease_expires_at is None
    assert await store.get("default", job.id) == done


async def test_failure_stores_the_error(store: JobStore) -> None:
    """failed: the error is kept and the job is finished."""
    job = await start_one(store)
    (done,) = await complete(store, job, JobState.FAILED, error="ValueError: bad input")
    assert done.state is JobState.FAILED
    assert done.error == "ValueError: bad input"
    assert done.finished_at == NOW


async def test_completion_of_a_stale_attempt_is_dropped(store: JobStore) -> None:
    """A late worker whose attempt expired and was re-claimed cannot record an outcome."""
    job = await start_one(store, max_attempts=2)
    await store.expire_leases(ExpireLeasesParams(now=NOW + LEASE_S + 1))
    (again,) = await claim(store, worker_id="w2", now=NOW + LEASE_S + 2)
    assert await complete(store, job, JobState.SUCCEEDED) == []
    stored = await store.get("default", job.id)
    assert stored == again


async def test_completion_of_a_cancelled_job_is_dropped(store: JobStore) -> None:
    """Cancel wins over a worker that finishes afterwards."""
    job = await start_one(store)
    cancelled = await store.cancel(CancelParams("default", job.id, NOW + 1))
    assert await complete(store, job, JobState.SUCCEEDED, result=1) == []
    assert await store.get("default", job.id) == cancelled


async def test_an_outcome_is_recorded_once(store: JobStore) -> None:
    """The same completion twice in a batch applies once; the second finds no running job."""
    job = await start_one(store)
    twice = [Completion(job.id, 1, JobState.SUCCEEDED, result=1)] * 2
    applied = await store.complete_many(CompleteParams(twice, NOW))
    assert [j.id for j in applied] == [job.id]


async def test_completions_return_only_the_jobs_they_changed(store: JobStore) -> None:
    """In a mixed batch, only the completions that applied come back."""
    a = await start_one(store)
    b = await start_one(store)
    batch = [
        Completion(a.id, 1, JobState.SUCCEEDED),
        Completion(b.id, 9, JobState.SUCCEEDED),
        Completion("no-such-job", 1, JobState.SUCCEEDED),
    ]
    applied = await store.complete_many(CompleteParams(batch, NOW))
    assert [j.id for j in applied] == [a.id]


async def test_failed_attempt_can_be_scheduled_for_a_retry(store: JobStore) -> None:
    """scheduled with run_at: not finished, not claimable before run_at, claimable after."""
    job = await start_one(store, max_attempts=3)
    (waiting,) = await complete(
        store, job, JobState.SCHEDULED, error="timeout", run_at=NOW + 30, now=NOW + 1
    )
    assert waiting.state is JobState.SCHEDULED
    assert (waiting.run_at, waiting.error, waiting.finished_at) == (NOW + 30, "timeout", None)
    assert waiting.lease_expires_at is None
    assert await claim(store, now=NOW + 29) == []
    (again,) = await claim(store, now=NOW + 30)
    assert (again.id, again.attempts) == (job.id, 2)


async def test_failed_attempt_can_be_queued_for_an_immediate_retry(store: JobStore) -> None:
    """queued: the job runs again at once with the next attempt."""
    job = await start_one(store, max_attempts=2)
    (queued,) = await complete(store, job, JobState.QUEUED, error="flaky")
    assert queued.state is JobState.QUEUED and queued.finished_at is None
    (again,) = await claim(store)
    assert (again.id, again.attempts) == (job.id, 2)


async def test_running_is_not_an_outcome(store: JobStore) -> None:
    """A completion must leave `running`; asking to stay there is a caller error."""
    job = await start_one(store)
    with pytest.raises(ValidationError):
        await complete(store, job, JobState.RUNNING)


async def test_scheduling_a_retry_needs_run_at(store: JobStore) -> None:
    """A scheduled outcome without a time to run is a caller error."""
    job = await start_one(store)
    with pytest.raises(ValidationError):
        await complete(store, job, JobState.SCHEDULED)


async def test_completing_a_job_that_never_ran_is_dropped(store: JobStore) -> None:
    """A queued job has no attempt to complete."""
    job = await submit_one(store)
    assert (
        await store.complete_many(CompleteParams([Completion(job.id, 0, JobState.SUCCEEDED)], NOW))
        == []
    )


async def test_times_come_back_as_floats_even_when_whole(store: JobStore) -> None:
    """Timestamps are float seconds on every path, including a whole-second `now`."""
    job = await start_one(store)
    (done,) = await complete(store, job, JobState.SUCCEEDED, now=NOW + 1)
    for value in (done.created_at, done.started_at, done.finished_at):
        assert type(value) is float


@pytest.mark.parametrize("size", [3, 40])
async def test_a_batch_of_any_size_records_each_outcome_of_its_attempt(
    store: JobStore, size: int
) -> None:
    """A few completions and a batch (PostgreSQL plans them apart) apply the same way: each
    to its running attempt, the stale ones dropped, every other job left as it was."""
    for i in range(size + 2):
        await submit_one(store, payload=i)
    running = await claim(store, size + 2)
    done, stale, untouched = running[:size], running[size], running[size + 1]
    batch = [Completion(j.id, 1, JobState.SUCCEEDED, result=j.payload) for j in done]
    batch.append(Completion(stale.id, 2, JobState.FAILED, error="stale"))
    applied = await store.complete_many(CompleteParams(batch, NOW + 1))
    assert sorted(j.id for j in applied) == sorted(j.id for j in done)
    for job in done:
        stored = await store.get("default", job.id)
        assert stored is not None
        assert (stored.state, stored.result, stored.finished_at) == (
            JobState.SUCCEEDED,
            job.payload,
            NOW + 1,
        )
    for job in (stale, untouched):
        stored = await store.get("default", job.id)
        assert stored is not None and stored.state is JobState.RUNNING
