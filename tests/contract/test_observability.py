"""What the dashboard and /metrics need from every store: list filters by label and creation
time, queue depths across tenants, and a job's stored trace context (issue 7)."""

from __future__ import annotations

from faena.domain.jobs import JobSpec, JobState
from faena.ports.store import JobStore, ListParams
from tests.contract.support import NOW, claim, submit, submit_one


async def test_list_filters_by_every_given_label(store: JobStore) -> None:
    """`labels` keeps jobs carrying all of them (a job may carry more)."""
    both = await submit_one(store, labels={"team": "ops", "env": "prod"})
    await submit_one(store, labels={"team": "ops"})
    await submit_one(store)
    page = await store.list_jobs(
        ListParams(tenant="default", labels={"team": "ops", "env": "prod"})
    )
    assert [j.id for j in page.jobs] == [both.id]
    ops = await store.list_jobs(ListParams(tenant="default", labels={"team": "ops"}))
    assert len(ops.jobs) == 2


async def test_list_filters_by_creation_time(store: JobStore) -> None:
    """`created_after` is inclusive, `created_before` exclusive."""
    [old] = await submit(store, JobSpec(kind="noop"), now=NOW - 100)
    [mid] = await submit(store, JobSpec(kind="noop"), now=NOW - 50)
    [new] = await submit(store, JobSpec(kind="noop"), now=NOW)
    after = await store.list_jobs(ListParams(tenant="default", created_after=NOW - 50))
    assert [j.id for j in after.jobs] == [new.id, mid.id]
    before = await store.list_jobs(ListParams(tenant="default", created_before=NOW - 50))
    assert [j.id for j in before.jobs] == [old.id]
    both = ListParams(tenant="default", created_after=NOW - 60, created_before=NOW)
    assert [j.id for j in (await store.list_jobs(both)).jobs] == [mid.id]


async def test_queue_depths_count_unfinished_jobs_of_every_tenant(store: JobStore) -> None:
    """Per queue and state, with the earliest time a job became runnable."""
    await submit(store, JobSpec(kind="noop", queue="q", tenant="a"), now=NOW - 30)
    await submit(store, JobSpec(kind="noop", queue="q", tenant="b"), now=NOW - 10)
    await submit(store, JobSpec(kind="noop", queue="later", run_at=NOW + 60))
    await submit(store, JobSpec(kind="noop", queue="busy"))
    await claim(store, queues=frozenset({"busy"}))
    depths = {(d.queue, d.state): d for d in await store.queue_depths()}  # type: ignore[attr-defined]
    assert depths[("q", "queued")].count == 2
    assert depths[("q", "queued")].oldest == NOW - 30
    assert depths[("later", "scheduled")].count == 1
    assert depths[("busy", "running")].count == 1
    assert all(d.state in {"queued", "scheduled", "running"} for d in depths.values())


async def test_a_jobs_traceparent_is_stored_and_read_back(store: JobStore) -> None:
    """The trace context of the submitter travels with the job to whoever claims it."""
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    job = await submit_one(store, traceparent=traceparent)
    assert job.traceparent == traceparent
    assert (await store.get("default", job.id)).traceparent == traceparent  # type: ignore[union-attr]
    [claimed] = await claim(store)
    assert claimed.traceparent == traceparent
    assert claimed.state is JobState.RUNNING
    plain = await submit_one(store)
    assert plain.traceparent is None
