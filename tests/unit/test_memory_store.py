"""MemoryStore's own machinery: lazy queue entries, id order, isolation of returned objects.

Behaviour shared with the other stores is in ``tests/contract``; these tests poke at what only
an in-memory implementation could get wrong.
"""

from __future__ import annotations

from faena.adapters.memory import MemoryStore
from faena.domain.ids import new_id
from faena.domain.jobs import JobSpec, JobState
from faena.ports.store import (
    CancelParams,
    ClaimParams,
    CompleteParams,
    Completion,
    ListParams,
    RetryParams,
    SubmitParams,
)

NOW = 1_700_000_000.0


async def submit(store: MemoryStore, *specs: JobSpec, ids: list[str] | None = None) -> list[str]:
    ids = ids or [new_id() for _ in specs]
    await store.submit_many(SubmitParams(list(specs), ids, NOW))
    return ids


async def claim(
    store: MemoryStore, limit: int = 100, kinds: frozenset[str] | None = None
) -> list[str]:
    jobs = await store.claim(ClaimParams("w", limit, lease_s=30, now=NOW, kinds=kinds))
    return [j.id for j in jobs]


async def test_a_job_cancelled_and_retried_is_claimed_once() -> None:
    """Old queue entries left by cancel/retry cycles never yield a second claim."""
    store = MemoryStore()
    (job_id,) = await submit(store, JobSpec(kind="noop"))
    for _ in range(3):
        await store.cancel(CancelParams("default", job_id, NOW))
        await store.retry(RetryParams("default", job_id, NOW))
    assert await claim(store) == [job_id]
    assert await claim(store) == []


async def test_jobs_passed_over_by_a_filter_stay_claimable() -> None:
    """A claim that skips jobs (wrong kind) leaves them queued, in order, for the next one."""
    store = MemoryStore()
    ids = await submit(store, JobSpec(kind="a"), JobSpec(kind="b"), JobSpec(kind="a"))
    assert await claim(store, kinds=frozenset({"b"})) == [ids[1]]
    assert await claim(store) == [ids[0], ids[2]]


async def test_ids_submitted_out_of_order_are_listed_newest_first() -> None:
    """Listing sorts by id even when callers submit ids out of order."""
    store = MemoryStore()
    ids = sorted(new_id() for _ in range(4))
    await submit(store, *(JobSpec(kind="noop") for _ in ids), ids=[ids[2], ids[0], ids[3], ids[1]])
    page = await store.list_jobs(ListParams(tenant="default"))
    assert [j.id for j in page.jobs] == ids[::-1]


async def test_changing_a_returned_job_does_not_change_the_store() -> None:
    """Every read hands out fresh objects: mutating one is invisible to the next read."""
    store = MemoryStore()
    (job_id,) = await submit(store, JobSpec(kind="noop", payload={"a": 1}, labels={"x": "y"}))
    job = await store.get("default", job_id)
    assert job is not None
    job.payload["a"] = 2
    job.labels["x"] = "z"
    again = await store.get("default", job_id)
    assert again is not None and (again.payload, again.labels) == ({"a": 1}, {"x": "y"})


async def test_rescheduled_job_is_due_at_its_new_time_only() -> None:
    """A job scheduled twice keeps only its latest run_at (the older entry is stale)."""
    store = MemoryStore()
    (job_id,) = await submit(store, JobSpec(kind="noop", run_at=NOW + 10, max_attempts=2))
    (running,) = await store.claim(ClaimParams("w", 1, 30, NOW + 10))
    done = Completion(job_id, running.attempts, JobState.SCHEDULED, run_at=NOW + 100)
    await store.complete_many(CompleteParams([done], NOW + 11))
    assert await store.next_run_at() == NOW + 100
    assert await store.claim(ClaimParams("w", 1, 30, NOW + 99)) == []


async def test_stats_follow_every_transition() -> None:
    """The counters kept alongside the jobs match the jobs after a mixed history."""
    store = MemoryStore()
    ids = await submit(store, *(JobSpec(kind="noop", queue="q") for _ in range(3)))
    await claim(store, 2)
    await store.cancel(CancelParams("default", ids[0], NOW))
    await store.complete_many(CompleteParams([Completion(ids[1], 1, JobState.FAILED)], NOW))
    stats = await store.stats("default")
    assert {s: n for s, n in stats.by_state.items() if n} == {
        "queued": 1,
        "failed": 1,
        "cancelled": 1,
    }
    assert stats.by_queue["q"] == stats.by_state
