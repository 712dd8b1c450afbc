"""Claiming: order, limits, readiness and the filters a worker applies."""

from __future__ import annotations

from faena.domain.jobs import JobSpec, JobState
from faena.ports.store import JobStore
from tests.contract.support import LEASE_S, NOW, claim, complete, submit, submit_one


async def test_claim_moves_job_to_running_under_a_lease(store: JobStore) -> None:
    """A claimed job is running for the worker: attempt 1, started now, lease now + lease_s."""
    job = await submit_one(store)
    (running,) = await claim(store, worker_id="w7")
    assert running.id == job.id
    assert running.state is JobState.RUNNING
    assert (running.attempts, running.worker_id, running.started_at) == (1, "w7", NOW)
    assert running.lease_expires_at == NOW + LEASE_S
    assert await store.get("default", job.id) == running


async def test_claim_takes_higher_priority_first_then_oldest(store: JobStore) -> None:
    """Order is priority descending, then submission (id) ascending."""
    jobs = await submit(store, *(JobSpec(kind="noop", priority=p) for p in [0, 5, 0, 5, -1, 10]))
    expected = sorted(jobs, key=lambda j: (-j.priority, j.id))
    claimed = await claim(store, 10)
    assert [j.id for j in claimed] == [j.id for j in expected]


async def test_claim_returns_at_most_limit_jobs(store: JobStore) -> None:
    """No more than `limit` jobs are claimed; the rest stay queued."""
    await submit(store, *(JobSpec(kind="noop") for _ in range(5)))
    assert len(await claim(store, 3)) == 3
    assert len(await claim(store, 3)) == 2


async def test_claimed_job_is_not_claimed_again(store: JobStore) -> None:
    """Once running, a job is invisible to other claims."""
    await submit_one(store)
    assert len(await claim(store, worker_id="w1")) == 1
    assert await claim(store, worker_id="w2") == []


async def test_claim_on_an_empty_store_returns_nothing(store: JobStore) -> None:
    """Nothing to run: an empty list, not an error."""
    assert await claim(store) == []


async def test_scheduled_job_is_not_claimed_before_run_at(store: JobStore) -> None:
    """A job waiting for its run_at stays put until then."""
    await submit_one(store, run_at=NOW + 60)
    assert await claim(store, now=NOW + 59) == []


async def test_scheduled_job_is_claimed_once_due(store: JobStore) -> None:
    """At its run_at a scheduled job is claimable, and running clears run_at."""
    job = await submit_one(store, run_at=NOW + 60)
    (running,) = await claim(store, now=NOW + 60)
    assert running.id == job.id
    assert running.run_at is None
    assert running.started_at == NOW + 60


async def test_due_scheduled_job_keeps_its_place_in_claim_order(store: JobStore) -> None:
    """A due job is ordered by priority and id like any queued job."""
    scheduled = await submit_one(store, run_at=NOW + 10, priority=1)
    (later,) = await submit(store, JobSpec(kind="noop", priority=1), now=NOW + 5)
    claimed = await claim(store, now=NOW + 20)
    assert [j.id for j in claimed] == [scheduled.id, later.id]


async def test_claim_takes_only_the_kinds_asked_for(store: JobStore) -> None:
    """With `kinds`, jobs of other kinds are left for other workers."""
    await submit(store, JobSpec(kind="a"), JobSpec(kind="b"), JobSpec(kind="c"))
    claimed = await claim(store, kinds=frozenset({"a", "c"}))
    assert sorted(j.kind for j in claimed) == ["a", "c"]


async def test_claim_takes_only_the_queues_asked_for(store: JobStore) -> None:
    """With `queues`, jobs of other queues are left alone."""
    await submit(store, JobSpec(kind="noop", queue="fast"), JobSpec(kind="noop", queue="slow"))
    claimed = await claim(store, queues=frozenset({"slow"}))
    assert [j.queue for j in claimed] == ["slow"]


async def test_job_without_labels_runs_on_any_worker(store: JobStore) -> None:
    """No required labels: claimable with or without worker labels."""
    await submit(store, JobSpec(kind="noop"), JobSpec(kind="noop"))
    assert len(await claim(store, 1)) == 1
    assert len(await claim(store, 1, worker_labels={"gpu": "a100"})) == 1


async def test_job_with_labels_needs_a_worker_offering_all_of_them(store: JobStore) -> None:
    """Required labels must be a subset of the worker's, with equal values."""
    job = await submit_one(store, labels={"gpu": "a100", "region": "eu"})
    assert await claim(store) == []
    assert await claim(store, worker_labels={"gpu": "a100"}) == []
    assert await claim(store, worker_labels={"gpu": "h100", "region": "eu"}) == []
    offered = {"gpu": "a100", "region": "eu", "os": "linux"}
    assert [j.id for j in await claim(store, worker_labels=offered)] == [job.id]


async def test_label_filter_does_not_hide_jobs_behind_unmatched_ones(store: JobStore) -> None:
    """Jobs the worker cannot take, ahead in order, do not shrink what it gets."""
    await submit(store, *(JobSpec(kind="noop", priority=9, labels={"gpu": "x"}) for _ in range(5)))
    plain = await submit(store, *(JobSpec(kind="noop") for _ in range(3)))
    claimed = await claim(store, 3)
    assert [j.id for j in claimed] == [j.id for j in plain]


async def test_concurrency_limit_counts_running_jobs(store: JobStore) -> None:
    """A job whose key already has `concurrency_limit` running jobs waits."""
    await submit_one(store, concurrency_key="acct-1", concurrency_limit=1)
    await submit_one(store, concurrency_key="acct-1", concurrency_limit=1)
    assert len(await claim(store, 1)) == 1
    assert await claim(store, 10) == []


async def test_concurrency_limit_counts_jobs_claimed_in_the_same_call(store: JobStore) -> None:
    """One claim never takes more jobs of a key than its limit allows."""
    keyed = await submit(
        store, *(JobSpec(kind="noop", concurrency_key="k", concurrency_limit=2) for _ in range(4))
    )
    plain = await submit_one(store)
    claimed = await claim(store, 10)
    assert [j.id for j in claimed] == [keyed[0].id, keyed[1].id, plain.id]


async def test_finished_job_frees_its_concurrency_slot(store: JobStore) -> None:
    """When a keyed job completes, the next job with that key becomes claimable."""
    await submit(
        store, *(JobSpec(kind="noop", concurrency_key="k", concurrency_limit=1) for _ in range(2))
    )
    (first,) = await claim(store)
    await complete(store, first, JobState.SUCCEEDED)
    assert len(await claim(store)) == 1


async def test_concurrency_keys_are_scoped_by_tenant(store: JobStore) -> None:
    """The same key in two tenants names two independent limits."""
    await submit_one(store, tenant="a", concurrency_key="k", concurrency_limit=1)
    await submit_one(store, tenant="b", concurrency_key="k", concurrency_limit=1)
    assert len(await claim(store, 10)) == 2


async def test_blocked_keyed_jobs_do_not_starve_other_jobs(store: JobStore) -> None:
    """Keyed jobs held back by their limit, ahead in order, do not shrink the claim."""
    keyed = await submit(
        store,
        *(JobSpec(kind="noop", priority=5, concurrency_key="k") for _ in range(6)),
    )
    plain = await submit(store, *(JobSpec(kind="noop") for _ in range(3)))
    claimed = await claim(store, 3)
    assert [j.id for j in claimed] == [keyed[0].id, plain[0].id, plain[1].id]
