"""Submitting jobs: defaults, scheduling, idempotency, atomic batches."""

from __future__ import annotations

import pytest

from faena.domain.errors import Conflict, ValidationError
from faena.domain.ids import new_id
from faena.domain.jobs import JobSpec, JobState
from faena.ports.store import JobStore, ListParams, SubmitParams
from tests.contract.support import NOW, submit, submit_one


async def test_submitted_job_is_queued_with_defaults(store: JobStore) -> None:
    """A plain spec becomes a queued job with the documented defaults and no outcome yet."""
    job = await submit_one(store)
    assert job.state is JobState.QUEUED
    assert (job.tenant, job.queue, job.priority, job.labels) == ("default", "default", 0, {})
    assert (job.attempts, job.max_attempts, job.created_at) == (0, 1, NOW)
    assert job.result is None and job.error is None and job.worker_id is None
    assert job.started_at is None and job.finished_at is None and job.run_at is None


async def test_stored_job_equals_the_returned_job(store: JobStore) -> None:
    """What submit returns is what get reads back, every field of the spec included."""
    job = await submit_one(
        store,
        kind="email.send",
        payload={"to": ["a@example.org"], "n": 1.5, "ok": True},
        tenant="acme",
        queue="mail",
        priority=7,
        labels={"region": "eu"},
        max_attempts=4,
        timeout_s=12.5,
        concurrency_key="smtp",
        concurrency_limit=3,
        backoff_s=2.0,
        backoff_max_s=60.0,
    )
    assert await store.get("acme", job.id) == job


async def test_submit_returns_one_job_per_spec_in_order(store: JobStore) -> None:
    """The i-th result is the job created for the i-th spec, with the i-th id."""
    specs = [JobSpec(kind=f"k{i}") for i in range(5)]
    ids = [new_id() for _ in specs]
    submitted = await store.submit_many(SubmitParams(specs, ids, NOW))
    assert [s.job.id for s in submitted] == ids
    assert [s.job.kind for s in submitted] == [f"k{i}" for i in range(5)]
    assert all(s.created for s in submitted)


async def test_job_with_future_run_at_is_scheduled(store: JobStore) -> None:
    """A run_at after now makes the job wait in `scheduled`, keeping its run_at."""
    job = await submit_one(store, run_at=NOW + 60)
    assert job.state is JobState.SCHEDULED
    assert job.run_at == NOW + 60


async def test_job_with_past_run_at_is_queued_at_once(store: JobStore) -> None:
    """A run_at that has already passed does not delay the job."""
    job = await submit_one(store, run_at=NOW - 60)
    assert job.state is JobState.QUEUED
    assert job.run_at is None


async def test_second_submit_with_same_idempotency_key_returns_first_job(store: JobStore) -> None:
    """Resubmitting a key returns the original job, created=False, and stores nothing new."""
    first = await submit_one(store, idempotency_key="order-42", payload=1)
    again = await store.submit_many(
        SubmitParams([JobSpec(kind="noop", idempotency_key="order-42", payload=2)], [new_id()], NOW)
    )
    assert again[0].created is False
    assert again[0].job == first
    page = await store.list_jobs(ListParams(tenant="default"))
    assert [j.id for j in page.jobs] == [first.id]


async def test_duplicate_idempotency_key_within_a_batch_returns_first_job(
    store: JobStore,
) -> None:
    """Inside one batch, the first spec with a key wins and later ones return it."""
    specs = [JobSpec(kind="noop", idempotency_key="k", payload=i) for i in range(3)]
    ids = [new_id() for _ in specs]
    submitted = await store.submit_many(SubmitParams(specs, ids, NOW))
    assert [s.created for s in submitted] == [True, False, False]
    assert {s.job.id for s in submitted} == {ids[0]}
    assert all(s.job.payload == 0 for s in submitted)


async def test_idempotency_keys_are_scoped_by_tenant(store: JobStore) -> None:
    """Two tenants using the same key get two different jobs."""
    a = await submit_one(store, tenant="a", idempotency_key="same")
    b = await store.submit_many(
        SubmitParams([JobSpec(kind="noop", tenant="b", idempotency_key="same")], [new_id()], NOW)
    )
    assert b[0].created is True
    assert b[0].job.id != a.id


async def test_submitting_an_existing_id_is_a_conflict(store: JobStore) -> None:
    """Ids are unique: reusing one is refused."""
    job = await submit_one(store)
    with pytest.raises(Conflict):
        await store.submit_many(SubmitParams([JobSpec(kind="noop")], [job.id], NOW))


async def test_payload_that_is_not_json_is_refused_and_nothing_is_stored(store: JobStore) -> None:
    """A batch with one unserializable payload fails whole, with a ValidationError."""
    specs = [JobSpec(kind="noop", payload=1), JobSpec(kind="noop", payload={"x": object()})]
    with pytest.raises(ValidationError, match="payload"):
        await store.submit_many(SubmitParams(specs, [new_id(), new_id()], NOW))
    assert (await store.list_jobs(ListParams(tenant="default"))).jobs == []


async def test_stored_payload_does_not_change_with_the_callers_object(store: JobStore) -> None:
    """The store keeps the payload's value, not a reference to the caller's object."""
    payload = {"items": [1, 2]}
    job = await submit_one(store, payload=payload)
    payload["items"].append(3)
    stored = await store.get("default", job.id)
    assert stored is not None and stored.payload == {"items": [1, 2]}


async def test_ids_and_specs_must_pair_up(store: JobStore) -> None:
    """A batch with a different number of ids and specs is refused."""
    with pytest.raises(ValidationError):
        await store.submit_many(SubmitParams([JobSpec(kind="noop")], [], NOW))


async def test_empty_batch_stores_nothing(store: JobStore) -> None:
    """Submitting no specs is allowed and returns no jobs."""
    assert await submit(store) == []
