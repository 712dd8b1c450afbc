"""Cancel and retry: the operator's controls, with clear refusals."""

from __future__ import annotations

import pytest

from faena.domain.errors import Conflict, NotFound
from faena.domain.jobs import JobState
from faena.ports.store import CancelParams, JobStore, RetryParams
from tests.contract.support import NOW, claim, in_state

LIVE = [JobState.QUEUED, JobState.SCHEDULED, JobState.RUNNING]
TERMINAL = [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED]


@pytest.mark.parametrize("state", LIVE)
async def test_cancel_stops_a_live_job_at_once(store: JobStore, state: JobState) -> None:
    """Queued, scheduled and running jobs become cancelled, finished now, with no lease."""
    job = await in_state(store, state)
    cancelled = await store.cancel(CancelParams("default", job.id, NOW + 5))
    assert cancelled.state is JobState.CANCELLED
    assert cancelled.finished_at == NOW + 5
    assert cancelled.lease_expires_at is None and cancelled.run_at is None
    assert await store.get("default", job.id) == cancelled


async def test_cancelled_job_is_never_claimed(store: JobStore) -> None:
    """A cancelled job leaves the queue for good."""
    for state in (JobState.QUEUED, JobState.SCHEDULED):
        job = await in_state(store, state)
        await store.cancel(CancelParams("default", job.id, NOW))
    assert await claim(store, now=NOW + 10_000) == []


@pytest.mark.parametrize("state", TERMINAL)
async def test_cancel_of_a_finished_job_is_a_conflict(store: JobStore, state: JobState) -> None:
    """A terminal job cannot be cancelled; the message names its state."""
    job = await in_state(store, state)
    with pytest.raises(Conflict, match=f"is {state.value}; it cannot be cancelled"):
        await store.cancel(CancelParams("default", job.id, NOW))


async def test_cancel_of_an_unknown_job_is_not_found(store: JobStore) -> None:
    """No such job: NotFound."""
    with pytest.raises(NotFound):
        await store.cancel(CancelParams("default", "0190c0de-0000-7000-8000-000000000000", NOW))


async def test_cancel_from_another_tenant_is_not_found(store: JobStore) -> None:
    """Another tenant's job is reported missing, and it is left untouched."""
    job = await in_state(store, JobState.QUEUED, tenant="a")
    with pytest.raises(NotFound):
        await store.cancel(CancelParams("b", job.id, NOW))
    assert await store.get("a", job.id) == job


@pytest.mark.parametrize("state", [JobState.FAILED, JobState.CANCELLED])
async def test_retry_queues_a_failed_or_cancelled_job_afresh(
    store: JobStore, state: JobState
) -> None:
    """Retry: queued again, attempts reset, the previous outcome and worker cleared."""
    job = await in_state(store, state, max_attempts=2)
    retried = await store.retry(RetryParams("default", job.id, NOW + 5))
    assert retried.state is JobState.QUEUED
    assert retried.attempts == 0
    assert retried.result is None and retried.error is None
    assert retried.started_at is None and retried.finished_at is None
    assert retried.worker_id is None and retried.lease_expires_at is None
    assert (retried.payload, retried.max_attempts) == (job.payload, 2)


async def test_retried_job_runs_again_from_attempt_one(store: JobStore) -> None:
    """After a retry the job is claimable, as its first attempt."""
    job = await in_state(store, JobState.FAILED)
    await store.retry(RetryParams("default", job.id, NOW))
    (again,) = await claim(store)
    assert (again.id, again.attempts) == (job.id, 1)


@pytest.mark.parametrize(
    "state", [JobState.QUEUED, JobState.SCHEDULED, JobState.RUNNING, JobState.SUCCEEDED]
)
async def test_retry_of_a_job_that_did_not_fail_is_a_conflict(
    store: JobStore, state: JobState
) -> None:
    """Only failed or cancelled jobs can be retried; the message names the state."""
    job = await in_state(store, state)
    with pytest.raises(Conflict, match=f"is {state.value}"):
        await store.retry(RetryParams("default", job.id, NOW))


async def test_retry_from_another_tenant_is_not_found(store: JobStore) -> None:
    """Another tenant's job is reported missing."""
    job = await in_state(store, JobState.FAILED, tenant="a")
    with pytest.raises(NotFound):
        await store.retry(RetryParams("b", job.id, NOW))
