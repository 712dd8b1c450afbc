"""An idle local pool takes submitted jobs in the submit's own transaction (FAENA_START_ON_SUBMIT):
which jobs it takes, which it leaves to the claim, and that nothing is promised twice or lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from typing import Any

import pytest

from faena.bootstrap import Runtime, build_runtime
from faena.config import Settings
from faena.domain.errors import Unavailable
from faena.domain.jobs import DEFAULT_TENANT, Job, JobState
from faena.ports.store import SubmitParams, Submitted
from faena.services.orchestrator import JobRequest
from faena.worker.registry import TaskRegistry, task

registry = TaskRegistry()
release = asyncio.Event()


@task(registry=registry)
async def add(a: int, b: int) -> int:
    return a + b


@task(registry=registry)
async def hold() -> str:
    await release.wait()
    return "released"


@asynccontextmanager
async def running(workers: int = 10, **settings: Any) -> AsyncIterator[Runtime]:
    runtime = build_runtime(
        Settings(
            database_url="memory://",
            workers=workers,
            shutdown_grace_s=1.0,
            rate_limits=False,
            **settings,
        ),
        registry=registry,
    )
    await runtime.start()
    try:
        yield runtime
    finally:
        release.set()
        await runtime.stop()


async def waiting(runtime: Runtime) -> None:
    """Until the pool's claim loop has found the queue empty and waits for work."""
    pool = runtime.pool
    assert pool is not None
    async with asyncio.timeout(5):
        while not pool.waiting_for_work:  # noqa: ASYNC110 - polls a flag the pool keeps
            await asyncio.sleep(0.001)


async def submit(runtime: Runtime, kind: str, payload: Any = None, **options: Any) -> Job:
    [submitted] = await runtime.orchestrator.submit(
        DEFAULT_TENANT, [JobRequest(kind=kind, payload=payload, **options)]
    )
    return submitted.job


async def finished(runtime: Runtime, job_id: str) -> Job:
    return await runtime.orchestrator.wait(DEFAULT_TENANT, job_id, 5.0)


@pytest.fixture(autouse=True)
def _released() -> None:
    release.clear()


async def test_an_idle_pool_takes_a_submitted_job_in_the_submit() -> None:
    """The submit returns the job already running on the pool, and it runs once, attempt 1."""
    async with running() as runtime:
        await waiting(runtime)
        job = await submit(runtime, "add", {"a": 2, "b": 3})
        assert runtime.pool is not None
        assert job.state is JobState.RUNNING
        assert (job.attempts, job.worker_id) == (1, runtime.pool.config.worker_id)
        done = await finished(runtime, job.id)
        assert (done.state, done.result, done.attempts) == (JobState.SUCCEEDED, 5, 1)


async def test_a_started_job_is_announced_once_per_state() -> None:
    """Live streams see `running` once (from the submit, not again from the pool), then the end."""
    async with running() as runtime:
        await waiting(runtime)
        with closing(runtime.bus.subscribe(tenant=DEFAULT_TENANT)) as sub:
            job = await submit(runtime, "add", {"a": 1, "b": 1})
            await finished(runtime, job.id)
            states: list[str] = []
            async with asyncio.timeout(5):
                while not states or states[-1] != "succeeded":
                    event = await sub.get()
                    if event.type == "job.state" and event.job_id == job.id:
                        states.append(event.data["state"])
        assert states == ["running", "succeeded"]


@pytest.mark.parametrize(
    ("options", "state"),
    [
        ({"delay_s": 30}, JobState.SCHEDULED),  # it must wait for its time
        ({"concurrency_key": "k"}, JobState.QUEUED),  # the claim counts its key's running jobs
        ({"labels": {"gpu": "yes"}}, JobState.QUEUED),  # this pool offers no such label
    ],
)
async def test_jobs_a_claim_here_would_not_take_now_are_left_to_the_claim(
    options: dict[str, Any], state: JobState
) -> None:
    async with running() as runtime:
        await waiting(runtime)
        job = await submit(runtime, "add", {"a": 1, "b": 2}, **options)
        assert job.state is state and job.attempts == 0


async def test_a_job_with_a_concurrency_key_still_runs_through_the_claim() -> None:
    async with running() as runtime:
        await waiting(runtime)
        job = await submit(runtime, "add", {"a": 1, "b": 2}, concurrency_key="k")
        done = await finished(runtime, job.id)
        assert (done.state, done.result) == (JobState.SUCCEEDED, 3)


async def test_a_full_pool_leaves_jobs_queued_until_a_slot_frees() -> None:
    """One slot: the first job takes it at submit, the second waits queued, then runs."""
    async with running(workers=1) as runtime:
        await waiting(runtime)
        first = await submit(runtime, "hold")
        second = await submit(runtime, "add", {"a": 4, "b": 4})
        assert (first.state, second.state) == (JobState.RUNNING, JobState.QUEUED)
        release.set()
        assert (await finished(runtime, first.id)).state is JobState.SUCCEEDED
        done = await finished(runtime, second.id)
        assert (done.state, done.result) == (JobState.SUCCEEDED, 8)


async def test_a_batch_fills_the_free_slots_and_queues_the_rest() -> None:
    async with running(workers=3) as runtime:
        await waiting(runtime)
        submitted = await runtime.orchestrator.submit(
            DEFAULT_TENANT, [JobRequest(kind="add", payload={"a": i, "b": 0}) for i in range(5)]
        )
        states = [s.job.state for s in submitted]
        assert states == [JobState.RUNNING] * 3 + [JobState.QUEUED] * 2
        for i, s in enumerate(submitted):
            done = await finished(runtime, s.job.id)
            assert (done.state, done.result, done.attempts) == (JobState.SUCCEEDED, i, 1)


async def test_off_every_job_is_queued_and_claimed() -> None:
    async with running(start_on_submit=False) as runtime:
        await waiting(runtime)
        job = await submit(runtime, "add", {"a": 2, "b": 2})
        assert job.state is JobState.QUEUED
        assert (await finished(runtime, job.id)).result == 4


async def test_a_failed_submit_gives_its_promised_slots_back() -> None:
    """The store refuses a submit: nothing runs, and the one slot is free for the next submit."""
    async with running(workers=1) as runtime:
        await waiting(runtime)
        store = runtime.store
        real = store.submit_many

        async def refuse(params: SubmitParams) -> list[Submitted]:
            assert params.start is not None  # the slot was promised to this submit
            raise Unavailable("the database is unavailable")

        store.submit_many = refuse  # type: ignore[method-assign]
        with pytest.raises(Unavailable):
            await submit(runtime, "add", {"a": 1, "b": 1})
        store.submit_many = real  # type: ignore[method-assign]
        assert runtime.pool is not None and runtime.pool.running == 0
        job = await submit(runtime, "add", {"a": 1, "b": 1})
        assert job.state is JobState.RUNNING
        assert (await finished(runtime, job.id)).result == 2
