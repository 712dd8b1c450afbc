"""Retention: finished jobs older than a cut-off are deleted with their logs, in batches."""

from __future__ import annotations

from faena.domain.jobs import JobState
from faena.domain.logs import LogChunk, LogStream
from faena.ports.store import CancelParams, JobStore, ListParams, PurgeParams, ReadLogsParams
from tests.contract.support import NOW, claim, complete, in_state, start_one, submit_one


def chunk(job_id: str, seq: int = 0) -> LogChunk:
    return LogChunk(job_id=job_id, seq=seq, stream=LogStream.STDOUT, data=f"line {seq}\n", ts=NOW)


async def finished_at(store: JobStore, when: float, state: JobState = JobState.SUCCEEDED) -> str:
    """A job that reached ``state`` at ``when``; returns its id."""
    running = await start_one(store)
    if state is JobState.CANCELLED:
        await store.cancel(CancelParams(running.tenant, running.id, when))
    else:
        await complete(
            store, running, state, now=when, error="boom" if state is JobState.FAILED else None
        )
    return running.id


async def test_finished_jobs_before_the_cut_off_are_deleted(store: JobStore) -> None:
    """Succeeded, failed and cancelled jobs that finished before `before` go; the count says so."""
    ids = [
        await finished_at(store, NOW - 100, state)
        for state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)
    ]
    assert await store.purge_finished(PurgeParams(before=NOW - 50)) == 3
    for job_id in ids:
        assert await store.get("default", job_id) is None


async def test_jobs_finished_at_or_after_the_cut_off_are_kept(store: JobStore) -> None:
    """`before` is exclusive: a job that finished at the cut-off or later stays."""
    at_cut = await finished_at(store, NOW - 50)
    later = await finished_at(store, NOW)
    assert await store.purge_finished(PurgeParams(before=NOW - 50)) == 0
    assert await store.get("default", at_cut) is not None
    assert await store.get("default", later) is not None


async def test_unfinished_jobs_are_never_purged(store: JobStore) -> None:
    """Running, scheduled and queued jobs stay, however old and whatever the cut-off."""
    running = await in_state(store, JobState.RUNNING)
    scheduled = await in_state(store, JobState.SCHEDULED)
    queued = await in_state(store, JobState.QUEUED)
    assert await store.purge_finished(PurgeParams(before=NOW + 10**9)) == 0
    for job in (running, scheduled, queued):
        kept = await store.get("default", job.id)
        assert kept is not None and kept.state is job.state


async def test_a_purge_is_bounded_by_its_limit_and_takes_the_oldest_first(
    store: JobStore,
) -> None:
    """`limit` caps one batch; the jobs that finished earliest go first."""
    newest = await finished_at(store, NOW - 10)
    oldest = await finished_at(store, NOW - 30)
    middle = await finished_at(store, NOW - 20)
    assert await store.purge_finished(PurgeParams(before=NOW, limit=2)) == 2
    assert await store.get("default", oldest) is None
    assert await store.get("default", middle) is None
    assert await store.get("default", newest) is not None
    assert await store.purge_finished(PurgeParams(before=NOW, limit=2)) == 1
    assert await store.purge_finished(PurgeParams(before=NOW, limit=2)) == 0


async def test_a_zero_limit_purges_nothing(store: JobStore) -> None:
    """A batch of zero is a no-op."""
    job_id = await finished_at(store, NOW - 100)
    assert await store.purge_finished(PurgeParams(before=NOW, limit=0)) == 0
    assert await store.get("default", job_id) is not None


async def test_the_logs_of_purged_jobs_go_with_them(store: JobStore) -> None:
    """A purged job's log chunks are deleted; other jobs' chunks stay."""
    old = await finished_at(store, NOW - 100)
    kept = await finished_at(store, NOW)
    await store.append_logs([chunk(old, 0), chunk(kept, 0), chunk(old, 1)])
    assert await store.purge_finished(PurgeParams(before=NOW - 50)) == 1
    assert await store.read_logs(ReadLogsParams(tenant="default", job_id=old)) == []
    stored = await store.read_logs(ReadLogsParams(tenant="default", job_id=kept))
    assert [s.chunk.seq for s in stored] == [0]


async def test_purged_jobs_leave_listings_and_stats(store: JobStore) -> None:
    """Listing and counts see only what is left."""
    await finished_at(store, NOW - 100)
    kept = await finished_at(store, NOW)
    await store.purge_finished(PurgeParams(before=NOW - 50))
    page = await store.list_jobs(ListParams(tenant="default"))
    assert [j.id for j in page.jobs] == [kept]
    stats = await store.stats("default")
    assert stats.by_state["succeeded"] == 1
    assert stats.by_queue["default"]["succeeded"] == 1


async def test_an_idempotency_key_of_a_purged_job_can_be_used_again(store: JobStore) -> None:
    """Keys protect retained jobs only: after a purge the same key creates a new job."""
    first = await submit_one(store, idempotency_key="k1")
    (running,) = await claim(store, 1)
    await complete(store, running, JobState.SUCCEEDED, now=NOW - 100)
    await store.purge_finished(PurgeParams(before=NOW))
    second = await submit_one(store, idempotency_key="k1")
    assert second.id != first.id and second.state is JobState.QUEUED


async def test_claims_work_after_a_purge(store: JobStore) -> None:
    """A job cancelled while queued and then purged does not disturb later claims."""
    cancelled = await submit_one(store)
    await store.cancel(CancelParams("default", cancelled.id, NOW - 100))
    waiting = await submit_one(store)
    assert await store.purge_finished(PurgeParams(before=NOW)) == 1
    assert [j.id for j in await claim(store, 10)] == [waiting.id]
