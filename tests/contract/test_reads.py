"""Reading jobs: get, list with filters and cursors, stats, the next scheduled time."""

from __future__ import annotations

from faena.domain.jobs import JobSpec, JobState
from faena.ports.store import JobStore, ListParams
from tests.contract.support import NOW, claim, in_state, submit, submit_one


async def test_get_returns_the_job_of_its_tenant(store: JobStore) -> None:
    """A job is readable by its own tenant."""
    job = await submit_one(store, tenant="acme")
    assert await store.get("acme", job.id) == job


async def test_get_hides_jobs_of_other_tenants(store: JobStore) -> None:
    """Another tenant's job reads as missing, exactly like an unknown id."""
    job = await submit_one(store, tenant="acme")
    assert await store.get("other", job.id) is None
    assert await store.get("acme", "0190c0de-0000-7000-8000-000000000000") is None


async def test_list_shows_newest_first(store: JobStore) -> None:
    """Jobs are listed newest (largest id) first."""
    jobs = await submit(store, *(JobSpec(kind="noop") for _ in range(3)))
    page = await store.list_jobs(ListParams(tenant="default"))
    assert [j.id for j in page.jobs] == [j.id for j in reversed(jobs)]
    assert page.next_cursor is None


async def test_list_shows_only_the_callers_tenant(store: JobStore) -> None:
    """Listing is scoped by tenant."""
    mine = await submit_one(store, tenant="a")
    await submit_one(store, tenant="b")
    page = await store.list_jobs(ListParams(tenant="a"))
    assert [j.id for j in page.jobs] == [mine.id]


async def test_list_filters_by_state(store: JobStore) -> None:
    """`states` keeps only jobs in one of the given states."""
    running = await in_state(store, JobState.RUNNING)
    queued = await in_state(store, JobState.QUEUED)
    await in_state(store, JobState.SCHEDULED)
    page = await store.list_jobs(
        ListParams(tenant="default", states=frozenset({JobState.RUNNING, JobState.QUEUED}))
    )
    assert [j.id for j in page.jobs] == [queued.id, running.id]


async def test_list_filters_by_queue_and_kind(store: JobStore) -> None:
    """`queue` and `kind` narrow the list, and combine."""
    a = await submit_one(store, kind="a", queue="q1")
    await submit_one(store, kind="b", queue="q1")
    await submit_one(store, kind="a", queue="q2")
    page = await store.list_jobs(ListParams(tenant="default", queue="q1", kind="a"))
    assert [j.id for j in page.jobs] == [a.id]
    assert len((await store.list_jobs(ListParams(tenant="default", kind="a"))).jobs) == 2
    assert len((await store.list_jobs(ListParams(tenant="default", queue="q1"))).jobs) == 2


async def test_list_pages_cover_every_job_once(store: JobStore) -> None:
    """Following next_cursor walks all jobs newest first, no duplicates, no gaps."""
    jobs = await submit(store, *(JobSpec(kind="noop") for _ in range(23)))
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await store.list_jobs(ListParams(tenant="default", limit=5, cursor=cursor))
        assert len(page.jobs) <= 5
        seen.extend(j.id for j in page.jobs)
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [j.id for j in reversed(jobs)]
    assert pages == 5


async def test_list_cursor_applies_with_filters(store: JobStore) -> None:
    """Pagination with a filter pages through the filtered jobs only."""
    jobs = await submit(store, *(JobSpec(kind="a" if i % 2 else "b") for i in range(10)))
    first = await store.list_jobs(ListParams(tenant="default", kind="a", limit=3))
    second = await store.list_jobs(
        ListParams(tenant="default", kind="a", limit=3, cursor=first.next_cursor)
    )
    expected = [j.id for j in reversed(jobs) if j.kind == "a"]
    assert [j.id for j in first.jobs + second.jobs] == expected
    assert second.next_cursor is None


async def test_stats_count_jobs_by_state_and_by_queue(store: JobStore) -> None:
    """Counts per state (every state present) and per queue and state."""
    await in_state(store, JobState.SUCCEEDED)  # first: in_state claims the oldest queued job
    await in_state(store, JobState.QUEUED, queue="mail")
    await in_state(store, JobState.QUEUED, queue="mail")
    await in_state(store, JobState.SCHEDULED, queue="mail")
    stats = await store.stats("default")
    assert stats.by_state == {
        "queued": 2,
        "scheduled": 1,
        "running": 0,
        "succeeded": 1,
        "failed": 0,
        "cancelled": 0,
    }
    assert stats.by_queue["mail"]["queued"] == 2
    assert stats.by_queue["mail"]["scheduled"] == 1
    assert stats.by_queue["default"]["succeeded"] == 1
    assert set(stats.by_queue) == {"mail", "default"}


async def test_stats_are_scoped_by_tenant(store: JobStore) -> None:
    """Another tenant's jobs are not counted."""
    await submit_one(store, tenant="other")
    stats = await store.stats("default")
    assert sum(stats.by_state.values()) == 0
    assert stats.by_queue == {}


async def test_next_run_at_is_the_earliest_scheduled_time(store: JobStore) -> None:
    """The scheduler sleeps until the first scheduled job is due."""
    assert await store.next_run_at() is None
    await submit_one(store, run_at=NOW + 50)
    await submit_one(store, run_at=NOW + 20)
    await submit_one(store)
    assert await store.next_run_at() == NOW + 20


async def test_next_run_at_forgets_jobs_that_started(store: JobStore) -> None:
    """Once the scheduled job has been claimed, nothing is waiting."""
    await submit_one(store, run_at=NOW + 20)
    await claim(store, now=NOW + 20)
    assert await store.next_run_at() is None
