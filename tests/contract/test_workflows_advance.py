"""The engine's hot path on every store: a run's change and the step jobs it submits are stored
in one transaction (``advance_runs``), many runs start together, the engine never reads back a
run it wrote, and a copy made stale by another writer loses its compare-and-swap and is read
again without submitting a step twice."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from faena.domain.errors import ValidationError
from faena.domain.jobs import JobSpec, JobState
from faena.domain.runs import OutboxEvent, Run, RunState, StepRun, StepState, Subscription
from faena.ports.workflows import (
    AdvanceRunsParams,
    DispatchOutboxParams,
    ListDeliveriesParams,
    ListRunsParams,
    RunChange,
)
from faena.services.workflow_engine import WorkflowEngine
from faena.services.workflows import RunRequest, WorkflowService
from tests.contract.workflow_support import TENANT, Harness

LINEAR = """
name: linear
steps:
  - {id: a, kind: noop, with: {n: 1}}
  - {id: b, kind: noop, needs: [a], with: {n: 2}}
  - {id: c, kind: noop, needs: [b], with: {n: 3}}
"""


class Counting:
    """A store that counts the calls made to it (and passes them on)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        if not callable(found):
            return found

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return found(*args, **kwargs)

        return counted


@pytest.fixture
def h(store: Any) -> Harness:
    return Harness(store)


def new_run(run_id: str, key: str | None = None) -> Run:
    return Run(
        id=run_id,
        tenant=TENANT,
        workflow="linear",
        version=1,
        state=RunState.RUNNING,
        inputs={},
        steps=[StepRun(id="a", state=StepState.RUNNING, jobs=[f"job-{run_id}"])],
        created_at=1.0,
        updated_at=1.0,
        idempotency_key=key,
    )


def change(run: Run, **kw: Any) -> RunChange:
    spec = JobSpec(kind="noop", tenant=TENANT, idempotency_key=f"wf:{run.id}:a:0:0")
    return RunChange(run, jobs=[spec], job_ids=[f"job-{run.id}"], **kw)


async def test_a_new_run_is_stored_with_its_first_jobs_in_one_operation(h: Harness) -> None:
    [created] = await h.store.advance_runs(
        AdvanceRunsParams([change(new_run("r1"), create=True)], now=5.0)
    )
    assert created.applied and created.run is not None and created.run.revision == 0
    assert [s.job.id for s in created.jobs] == ["job-r1"] and created.jobs[0].created
    stored = await h.store.get_run(TENANT, "r1")
    assert stored is not None and stored.step("a").jobs == ["job-r1"]
    job = await h.store.get(TENANT, "job-r1")
    assert job is not None and job.state is JobState.QUEUED and job.created_at == 5.0


async def test_a_lost_compare_and_swap_writes_nothing_of_the_change(h: Harness) -> None:
    await h.store.advance_runs(AdvanceRunsParams([RunChange(new_run("r1"), create=True)], 1.0))
    stale = new_run("r1")
    stale.revision = 7  # another writer's revision is 0
    event = OutboxEvent("run.state", TENANT, {"run_id": "r1"}, 1.0)
    [lost] = await h.store.advance_runs(AdvanceRunsParams([change(stale, events=[event])], 2.0))
    assert not lost.applied and lost.run is None and lost.jobs == []
    assert await h.store.get(TENANT, "job-r1") is None
    assert (await h.store.get_run(TENANT, "r1")).revision == 0  # type: ignore[union-attr]


async def test_a_taken_run_key_returns_that_run_and_submits_nothing(h: Harness) -> None:
    first, again = await h.store.advance_runs(
        AdvanceRunsParams(
            [
                change(new_run("r1", key="k"), create=True),
                change(new_run("r2", key="k"), create=True),
            ],
            1.0,
        )
    )
    assert first.applied and not again.applied
    assert again.run is not None and again.run.id == "r1"
    assert await h.store.get_run(TENANT, "r2") is None
    assert await h.store.get(TENANT, "job-r2") is None


async def test_a_planned_job_whose_key_is_taken_is_replaced_by_the_earlier_job(h: Harness) -> None:
    """A run advanced again from an older copy (a crash, another server) plans the same step
    job again: the stored run refers to the job stored the first time."""
    await h.store.advance_runs(AdvanceRunsParams([change(new_run("r1"), create=True)], 1.0))
    stored = await h.store.get_run(TENANT, "r1")
    assert stored is not None
    again = stored.copy()
    again.step("a").jobs = ["job-second"]
    spec = JobSpec(kind="noop", tenant=TENANT, idempotency_key="wf:r1:a:0:0")
    [saved] = await h.store.advance_runs(
        AdvanceRunsParams([RunChange(again, jobs=[spec], job_ids=["job-second"])], 2.0)
    )
    assert saved.applied and saved.run is not None and saved.run.revision == 1
    assert [(s.job.id, s.created) for s in saved.jobs] == [("job-r1", False)]
    assert saved.run.step("a").jobs == ["job-r1"]
    assert (await h.store.get_run(TENANT, "r1")).step("a").jobs == ["job-r1"]  # type: ignore[union-attr]
    assert await h.store.get(TENANT, "job-second") is None


async def test_events_reach_the_outbox_only_for_tenants_whose_subscription_wants_them(
    h: Harness,
) -> None:
    """The webhook relay is the outbox's only reader: an event nobody subscribed to is not
    written (the bus still carries it to live streams)."""
    await h.store.create_subscription(
        Subscription("s1", "watched", "http://hooks.test/x", ("run.*",), "secret", 1.0)
    )
    events = [
        OutboxEvent("run.state", "watched", {"n": 1}, 1.0),
        OutboxEvent("step.state", "watched", {"n": 2}, 1.0),  # not wanted: only run.*
        OutboxEvent("run.state", TENANT, {"n": 3}, 1.0),  # no subscription at all
    ]
    await h.store.advance_runs(
        AdvanceRunsParams([RunChange(new_run("r1"), events=events, create=True)], 1.0)
    )
    backlog = await h.store.delivery_backlog()
    assert backlog.outbox == 1
    assert await h.store.dispatch_outbox(DispatchOutboxParams(now=2.0)) == 1
    [delivery] = await h.store.list_deliveries(ListDeliveriesParams("watched"))
    assert delivery.body["data"] == {"n": 1}


async def test_each_advance_is_one_write_and_reads_back_no_run(h: Harness) -> None:
    """Finishing a step's job costs the engine one read of the run's step jobs and one write
    (the run saved with the next step's job), not a submit, a save and a read of the run."""
    await h.apply(LINEAR)
    counting = Counting(h.store)
    engine = WorkflowEngine(counting, h.orchestrator, h.bus, h.clock)  # type: ignore[arg-type]
    service = WorkflowService(engine)
    run, _ = await service.start(TENANT, "linear")
    assert counting.calls["advance_runs"] == 1 and counting.calls["submit_many"] == 0
    for _ in range(3):
        counting.calls.clear()
        await h.work()
        advanced = await engine.advance(TENANT, run.id)
        assert advanced is not None
        assert counting.calls["advance_runs"] == 1, counting.calls
        assert counting.calls["get_step_jobs"] == 1
        for unwanted in ("submit_many", "save_run", "save_runs", "get_run", "get_runs"):
            assert counting.calls[unwanted] == 0, (unwanted, counting.calls)
    assert advanced.state is RunState.SUCCEEDED
    assert [s.output for s in advanced.steps] == [{"n": 1}, {"n": 2}, {"n": 3}]


async def test_many_runs_start_in_one_write(h: Harness) -> None:
    await h.apply(LINEAR)
    counting = Counting(h.store)
    engine = WorkflowEngine(counting, h.orchestrator, h.bus, h.clock)  # type: ignore[arg-type]
    started = await WorkflowService(engine).start_many(
        TENANT, "linear", [RunRequest(), RunRequest(idempotency_key="k"), RunRequest()]
    )
    assert counting.calls["advance_runs"] == 1 and counting.calls["submit_many"] == 0
    assert [created for _, created in started] == [True, True, True]
    assert len({run.id for run, _ in started}) == 3
    jobs = await h.claim()
    assert sorted(j.payload["n"] for j in jobs) == [1, 1, 1]
    again = await WorkflowService(engine).start_many(
        TENANT, "linear", [RunRequest(idempotency_key="k"), RunRequest()]
    )
    assert (again[0][0].id, again[0][1]) == (started[1][0].id, False)
    assert again[1][1] is True


async def test_a_bad_run_in_a_batch_names_its_index_and_starts_none(h: Harness) -> None:
    await h.apply("name: typed\ninputs: {x: integer}\nsteps: [{id: a, kind: noop}]")
    with pytest.raises(ValidationError, match=r"run 1: .*must be of type integer"):
        await h.service.start_many(
            TENANT, "typed", [RunRequest({"x": 1}), RunRequest({"x": "one"})]
        )
    assert (await h.service.list_runs(ListRunsParams(TENANT))).runs == []


async def test_a_copy_made_stale_by_another_server_is_read_again(h: Harness) -> None:
    """Two engines (two servers) advance the same run: the one holding an old copy loses its
    compare-and-swap, reads the run again, and no step job is submitted twice."""
    await h.apply(LINEAR)
    run = await h.start("linear")
    other = WorkflowEngine(h.store, h.orchestrator, h.bus, h.clock)
    await h.work()
    assert (await other.advance(TENANT, run.id)).step("b").state is StepState.RUNNING  # type: ignore[union-attr]
    await h.work()
    advanced = await h.engine.advance(TENANT, run.id)  # its copy still has "a" running
    assert advanced is not None
    assert advanced.step("b").state is StepState.SUCCEEDED
    assert advanced.step("c").state is StepState.RUNNING
    jobs = await h.work()
    assert [j.payload for j in jobs] == [{"n": 3}]  # "b" and "c" were each submitted once
    assert (await h.drive(advanced)).state is RunState.SUCCEEDED
