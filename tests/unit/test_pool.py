"""The local pool end to end on the in-memory store: claims, runs, retries, leases, shutdown."""

from __future__ import annotations

import asyncio
from contextlib import closing

import pytest

from faena.domain.jobs import Job, JobState
from faena.ports.store import ClaimParams
from faena.testing import InMemoryFaena
from faena.worker.registry import TaskRegistry, task

registry = TaskRegistry()
calls: dict[str, int] = {}
gauge = {"now": 0, "peak": 0}


@task(registry=registry)
async def add(a: int, b: int) -> int:
    return a + b


@task(registry=registry)
async def flaky(key: str, fail_times: int) -> str:
    calls[key] = calls.get(key, 0) + 1
    if calls[key] <= fail_times:
        raise RuntimeError(f"failure {calls[key]}")
    return "ok"


@task(registry=registry)
async def guarded(seconds: float) -> None:
    gauge["now"] += 1
    gauge["peak"] = max(gauge["peak"], gauge["now"])
    try:
        await asyncio.sleep(seconds)
    finally:
        gauge["now"] -= 1


@pytest.fixture
async def faena_() -> InMemoryFaena:
    async with InMemoryFaena(registry=registry, workers=10) as f:
        yield f


async def test_a_python_task_returns_its_value(faena_: InMemoryFaena) -> None:
    job = await faena_.submit("add", {"a": 2, "b": 3})
    done = await faena_.wait(job.id)
    assert (done.state, done.result, done.attempts) == (JobState.SUCCEEDED, 5, 1)
    assert done.started_at is not None and done.finished_at is not None


async def test_a_failing_task_is_retried_until_it_succeeds(faena_: InMemoryFaena) -> None:
    job = await faena_.submit(
        "flaky", {"key": "a", "fail_times": 2}, max_attempts=3, backoff_s=0.0
    )
    done = await faena_.wait(job.id)
    assert (done.state, done.attempts) == (JobState.SUCCEEDED, 3)
    assert "attempt 1/3 failed: RuntimeError: failure 1" in await faena_.logs(job.id)


async def test_a_task_failing_every_attempt_ends_failed_with_its_error(
    faena_: InMemoryFaena,
) -> None:
    job = await faena_.submit(
        "flaky", {"key": "b", "fail_times": 9}, max_attempts=2, backoff_s=0.0
    )
    done = await faena_.wait(job.id)
    assert (done.state, done.attempts) == (JobState.FAILED, 2)
    assert done.error == "RuntimeError: failure 2"


async def test_a_retry_waits_for_its_backoff(faena_: InMemoryFaena) -> None:
    job = await faena_.submit(
        "flaky", {"key": "c", "fail_times": 1}, max_attempts=2, backoff_s=0.4
    )
    seen = await faena_.runtime.orchestrator.wait(faena_.tenant, job.id, 0.15)
    assert seen.state is JobState.SCHEDULED  # still waiting out its backoff
    done = await faena_.wait(job.id)
    assert done.state is JobState.SUCCEEDED
    assert done.finished_at is not None and done.finished_at - done.created_at >= 0.2


async def test_a_job_over_its_timeout_fails(faena_: InMemoryFaena) -> None:
    job = await faena_.submit("sleep", {"seconds": 30}, timeout_s=0.2)
    done = await faena_.wait(job.id)
    assert done.state is JobState.FAILED
    assert done.error is not None and "timed out" in done.error


async def test_cancelling_a_running_job_stops_it_and_keeps_it_cancelled(
    faena_: InMemoryFaena,
) -> None:
    job = await faena_.submit("sleep", {"seconds": 30})
    with_state = await _until(faena_, job.id, JobState.RUNNING)
    assert with_state.state is JobState.RUNNING
    await faena_.runtime.orchestrator.cancel(faena_.tenant, job.id)
    await faena_.run_until_idle()
    assert faena_.runtime.pool is not None and faena_.runtime.pool.running == 0
    assert (await faena_.get(job.id)).state is JobState.CANCELLED


async def test_a_concurrency_key_bounds_how_many_run_at_once(faena_: InMemoryFaena) -> None:
    jobs = [
        await faena_.submit("guarded", {"seconds": 0.05}, concurrency_key="k", concurrency_limit=2)
        for _ in range(6)
    ]
    for job in jobs:
        assert (await faena_.wait(job.id)).state is JobState.SUCCEEDED
    assert gauge["peak"] == 2


async def test_output_is_stored_before_the_outcome(faena_: InMemoryFaena) -> None:
    job = await faena_.submit("shell", {"command": "echo hello"})
    done = await faena_.wait(job.id)
    assert done.state is JobState.SUCCEEDED
    assert await faena_.logs(job.id) == "hello\n"


async def test_a_job_whose_lease_expires_is_run_again() -> None:
    async with InMemoryFaena(registry=registry, workers=1) as f:
        pool = f.runtime.pool
        assert pool is not None
        await pool.stop(grace_s=0)  # this pool goes away; a "dead worker" claims the job
        job = await f.submit("add", {"a": 1, "b": 1}, max_attempts=2)
        store = f.runtime.store
        now = f.runtime.orchestrator.clock.now()
        [claimed] = await store.claim(ClaimParams(worker_id="dead", limit=1, lease_s=0.01, now=now))
        assert claimed.id == job.id
        await asyncio.sleep(0.02)
        assert await f.runtime.reaper.reap_once() == 1
        after = await f.get(job.id)
        assert (after.state, after.attempts) == (JobState.QUEUED, 1)
        assert after.error is not None and "lease expired" in after.error


async def test_shutdown_hands_running_jobs_back_to_the_queue() -> None:
    f = InMemoryFaena(registry=registry, workers=2)
    await f.__aenter__()
    job = await f.submit("sleep", {"seconds": 30})
    await _until(f, job.id, JobState.RUNNING)
    assert f.runtime.pool is not None
    await f.runtime.pool.stop(grace_s=0.05)
    after = await f.get(job.id)
    assert after.state is JobState.QUEUED
    assert "handed back" in await f.logs(job.id)
    await f.__aexit__(None, None, None)


async def _until(f: InMemoryFaena, job_id: str, state: JobState) -> Job:
    with closing(f.runtime.bus.subscribe(job_id=job_id)) as sub:
        async with asyncio.timeout(5):
            while (job := await f.get(job_id)).state is not state:
                await sub.get()
    return job
