"""The WorkerStore contract: the worker registry, worker tokens, and claims of chosen jobs."""

from __future__ import annotations

from typing import Any, cast

import pytest

from faena.domain.errors import NotFound
from faena.domain.jobs import JobSpec, JobState
from faena.domain.workers import Capacity, Load, WorkerInfo, WorkerKind, WorkerState, WorkerToken
from faena.ports.store import JobStore
from faena.ports.workers import (
    ClaimJobsParams,
    DisconnectParams,
    ListWorkersParams,
    PeekParams,
    PruneWorkersParams,
    WorkerStore,
)
from tests.contract.support import NOW, claim, submit, submit_one


def _workers(store: JobStore) -> WorkerStore:
    assert isinstance(store, WorkerStore)
    return cast(WorkerStore, store)


def _worker(worker_id: str = "w1", **changes: Any) -> WorkerInfo:
    info = WorkerInfo(
        id=worker_id,
        kind=WorkerKind.REMOTE,
        kinds=frozenset({"noop", "sleep"}),
        labels={"region": "eu"},
        capacity=Capacity(slots=8, cpu_cores=4.0, memory_mb=2048),
        version="0.1.0",
        host="box",
        server="server-a",
        started_at=NOW,
        last_heartbeat=NOW,
        load=Load(cpu_percent=12.5, memory_percent=40.0, running=2),
    )
    return info.evolve(**changes)


async def test_a_saved_worker_is_listed_as_saved(store: JobStore) -> None:
    ws = _workers(store)
    await ws.save_worker(_worker())
    assert await ws.list_workers(ListWorkersParams()) == [_worker()]


async def test_saving_a_worker_again_replaces_its_record(store: JobStore) -> None:
    ws = _workers(store)
    await ws.save_worker(_worker())
    later = _worker(last_heartbeat=NOW + 5, load=Load(99.0, 10.0, 8), state=WorkerState.DRAINING)
    await ws.save_worker(later)
    assert await ws.list_workers(ListWorkersParams()) == [later]


async def test_workers_are_listed_by_id_and_filtered_by_last_heartbeat(store: JobStore) -> None:
    ws = _workers(store)
    await ws.save_worker(_worker("b", last_heartbeat=NOW))
    await ws.save_worker(_worker("a", last_heartbeat=NOW - 60))
    assert [w.id for w in await ws.list_workers(ListWorkersParams())] == ["a", "b"]
    assert [w.id for w in await ws.list_workers(ListWorkersParams(since=NOW - 10))] == ["b"]


async def test_disconnecting_marks_workers_and_clears_their_running_count(
    store: JobStore,
) -> None:
    ws = _workers(store)
    await ws.save_worker(_worker("a"))
    await ws.save_worker(_worker("b"))
    await ws.disconnect_workers(DisconnectParams(["a", "missing"], NOW))
    by_id = {w.id: w for w in await ws.list_workers(ListWorkersParams())}
    assert by_id["a"].state is WorkerState.DISCONNECTED
    assert by_id["a"].load.running == 0
    assert by_id["b"].state is WorkerState.CONNECTED


async def test_pruning_forgets_workers_silent_since_before(store: JobStore) -> None:
    ws = _workers(store)
    await ws.save_worker(_worker("old", last_heartbeat=NOW - 3600))
    await ws.save_worker(_worker("new"))
    assert await ws.prune_workers(PruneWorkersParams(before=NOW - 60)) == 1
    assert [w.id for w in await ws.list_workers(ListWorkersParams())] == ["new"]


async def test_peek_returns_runnable_jobs_of_the_kinds_in_claim_order(store: JobStore) -> None:
    low = await submit_one(store, "noop", priority=0)
    high = await submit_one(store, "noop", priority=5)
    await submit_one(store, "other")
    due = await submit_one(store, "noop", run_at=NOW + 10)
    await submit_one(store, "noop", run_at=NOW + 3600)
    peeked = await _workers(store).peek_runnable(
        PeekParams(now=NOW + 20, limit=10, kinds=frozenset({"noop"}))
    )
    assert [j.id for j in peeked] == [high.id, low.id, due.id]
    again = await _workers(store).peek_runnable(
        PeekParams(now=NOW + 20, limit=1, kinds=frozenset({"noop"}))
    )
    assert [j.id for j in again] == [high.id]
    assert (await store.get("default", low.id)).state is JobState.QUEUED  # type: ignore[union-attr]


async def test_claim_jobs_runs_the_chosen_jobs_for_the_worker(store: JobStore) -> None:
    a, b, c = await submit(store, JobSpec("noop"), JobSpec("noop"), JobSpec("noop"))
    claimed = await _workers(store).claim_jobs(
        ClaimJobsParams(worker_id="agent-1", job_ids=[c.id, a.id], lease_s=30, now=NOW + 1)
    )
    assert [j.id for j in claimed] == [a.id, c.id]
    for job in claimed:
        assert job.state is JobState.RUNNING
        assert job.worker_id == "agent-1"
        assert job.attempts == 1
        assert job.lease_expires_at == NOW + 31
    (rest,) = await claim(store)
    assert rest.id == b.id


async def test_claim_jobs_skips_jobs_that_are_no_longer_queued(store: JobStore) -> None:
    job = await submit_one(store)
    await claim(store)
    claimed = await _workers(store).claim_jobs(
        ClaimJobsParams(worker_id="agent-1", job_ids=[job.id, "missing"], lease_s=30, now=NOW)
    )
    assert claimed == []


async def test_claim_jobs_takes_due_scheduled_jobs(store: JobStore) -> None:
    job = await submit_one(store, run_at=NOW + 5)
    ws = _workers(store)
    early = ClaimJobsParams(worker_id="a", job_ids=[job.id], lease_s=30, now=NOW)
    assert await ws.claim_jobs(early) == []
    late = ClaimJobsParams(worker_id="a", job_ids=[job.id], lease_s=30, now=NOW + 6)
    assert [j.id for j in await ws.claim_jobs(late)] == [job.id]


async def test_claim_jobs_honours_concurrency_limits(store: JobStore) -> None:
    jobs = await submit(
        store, *(JobSpec("noop", concurrency_key="k", concurrency_limit=2) for _ in range(3))
    )
    ws = _workers(store)
    first = await ws.claim_jobs(
        ClaimJobsParams(worker_id="a", job_ids=[j.id for j in jobs], lease_s=30, now=NOW)
    )
    assert len(first) == 2
    again = await ws.claim_jobs(
        ClaimJobsParams(worker_id="a", job_ids=[jobs[2].id], lease_s=30, now=NOW)
    )
    assert again == []


def _token(token_id: str = "t1", tenant: str = "default", **changes: Any) -> WorkerToken:
    token = WorkerToken(
        id=token_id,
        tenant=tenant,
        name="edge",
        prefix="fw_abcdefgh",
        token_hash="0" * 64,
        created_at=NOW,
    )
    return WorkerToken(**{**token.__dict__, **changes}) if hasattr(token, "__dict__") else token


async def test_worker_tokens_are_found_by_id_prefix_and_tenant(store: JobStore) -> None:
    ws = _workers(store)
    token = _token()
    await ws.create_worker_token(token)
    assert await ws.get_worker_token("t1") == token
    assert await ws.get_worker_token("nope") is None
    assert await ws.find_worker_tokens("fw_abcdefgh") == [token]
    assert await ws.list_worker_tokens("default") == [token]
    assert await ws.list_worker_tokens("other") == []


async def test_revoking_a_worker_token_keeps_the_first_revocation_time(store: JobStore) -> None:
    ws = _workers(store)
    await ws.create_worker_token(_token())
    first = await ws.revoke_worker_token("default", "t1", NOW + 1)
    again = await ws.revoke_worker_token("default", "t1", NOW + 2)
    assert first.revoked_at == again.revoked_at == NOW + 1
    assert not again.is_active


async def test_revoking_another_tenants_worker_token_is_not_found(store: JobStore) -> None:
    ws = _workers(store)
    await ws.create_worker_token(_token())
    with pytest.raises(NotFound):
        await ws.revoke_worker_token("other", "t1", NOW)
    with pytest.raises(NotFound):
        await ws.revoke_worker_token("default", "missing", NOW)


async def test_declared_resources_are_stored_with_the_job(store: JobStore) -> None:
    job = await submit_one(store, resources={"cpu": 1.5, "memory_mb": 512})
    assert job.resources == {"cpu": 1.5, "memory_mb": 512}
    stored = await store.get("default", job.id)
    assert stored is not None and stored.resources == {"cpu": 1.5, "memory_mb": 512}
    (peeked,) = await _workers(store).peek_runnable(
        PeekParams(now=NOW, limit=10, kinds=frozenset({"noop"}))
    )
    assert peeked.resources == {"cpu": 1.5, "memory_mb": 512}
    plain = await submit_one(store)
    assert (await store.get("default", plain.id)).resources is None  # type: ignore[union-attr]


# -- tenancy: workers bound to a tenant (issue 6) -------------------------------------------


async def test_a_workers_tenant_is_stored_and_shared_workers_have_none(store: JobStore) -> None:
    ws = _workers(store)
    await ws.save_worker(_worker("bound", tenant="acme"))
    await ws.save_worker(_worker("shared"))
    by_id = {w.id: w for w in await ws.list_workers(ListWorkersParams())}
    assert by_id["bound"].tenant == "acme" and not by_id["bound"].shared
    assert by_id["shared"].tenant is None and by_id["shared"].shared


async def test_a_tenant_lists_its_own_workers_and_the_operator_the_shared_ones(
    store: JobStore,
) -> None:
    ws = _workers(store)
    await ws.save_worker(_worker("a1", tenant="a"))
    await ws.save_worker(_worker("b1", tenant="b"))
    await ws.save_worker(_worker("d1", tenant="default"))
    await ws.save_worker(_worker("pool"))
    await ws.save_worker(_worker("old", tenant="b", last_heartbeat=NOW - 60))
    assert [w.id for w in await ws.list_workers(ListWorkersParams(tenant="a"))] == ["a1"]
    recent = ListWorkersParams(since=NOW - 10, tenant="b")
    assert [w.id for w in await ws.list_workers(recent)] == ["b1"]
    operator = ListWorkersParams(tenant="default")
    assert [w.id for w in await ws.list_workers(operator)] == ["d1", "pool"]
    every = [w.id for w in await ws.list_workers(ListWorkersParams())]
    assert every == ["a1", "b1", "d1", "old", "pool"]


async def test_peek_for_a_tenant_returns_only_that_tenants_runnable_jobs(store: JobStore) -> None:
    a = await submit_one(store, "noop", tenant="a", priority=9)
    b = await submit_one(store, "noop", tenant="b")
    b_due = await submit_one(store, "noop", tenant="b", run_at=NOW + 10)
    await submit_one(store, "noop", tenant="a", run_at=NOW + 10)
    ws = _workers(store)
    only_b = await ws.peek_runnable(
        PeekParams(now=NOW + 20, limit=10, kinds=frozenset({"noop"}), tenant="b")
    )
    assert [j.id for j in only_b] == [b.id, b_due.id]
    every = await ws.peek_runnable(PeekParams(now=NOW + 20, limit=10, kinds=frozenset({"noop"})))
    assert len(every) == 4 and every[0].id == a.id


async def test_claim_jobs_for_a_tenant_skips_another_tenants_jobs(store: JobStore) -> None:
    a = await submit_one(store, "noop", tenant="a")
    b = await submit_one(store, "noop", tenant="b")
    ws = _workers(store)
    claimed = await ws.claim_jobs(
        ClaimJobsParams(worker_id="b-w", job_ids=[a.id, b.id], lease_s=30, now=NOW, tenant="b")
    )
    assert [j.id for j in claimed] == [b.id]
    untouched = await store.get("a", a.id)
    assert untouched is not None and untouched.state is JobState.QUEUED


async def test_a_shared_worker_token_is_stored_as_shared(store: JobStore) -> None:
    ws = _workers(store)
    await ws.create_worker_token(_token("t1"))
    await ws.create_worker_token(
        WorkerToken("t2", "default", "fleet", "fw_zyxwvuts", "1" * 64, NOW, shared=True)
    )
    plain, shared = await ws.get_worker_token("t1"), await ws.get_worker_token("t2")
    assert plain is not None and not plain.shared and plain.serves_tenant == "default"
    assert shared is not None and shared.shared and shared.serves_tenant is None
    assert [t.shared for t in await ws.list_worker_tokens("default")] == [False, True]
