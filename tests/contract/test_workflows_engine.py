"""The workflow engine on every store: data passing, when, for_each, failure policies, cancel,
retry, idempotent repair after a crash."""

from __future__ import annotations

from typing import Any

import pytest

from faena.domain.errors import Conflict, NotFound, ValidationError
from faena.domain.jobs import JobState
from faena.domain.runs import RunState, StepState
from tests.contract.workflow_support import TENANT, Harness

INTAKE = """
name: intake
inputs:
  url: string
  limit: {type: integer, default: 100}
steps:
  - id: text
    kind: extract
    with: {url: "{{ inputs.url }}"}
  - id: total
    kind: add
    needs: [text]
    with: {amount: "{{ steps.text.output.amount }}", lines: "{{ steps.text.output.lines }}"}
  - id: tell
    kind: notify
    needs: [total]
    when: "{{ steps.total.output.amount > inputs.limit }}"
    with: {message: "total is {{ steps.total.output.amount }}"}
  - id: each
    kind: fetch
    needs: [text]
    for_each: "{{ steps.text.output.lines }}"
    max_parallel: 2
    with: {line: "{{ item }}", n: "{{ index }}"}
  - id: after_tell
    kind: noop
    needs: [tell]
"""


@pytest.fixture
def h(store: Any) -> Harness:
    return Harness(store)


async def test_outputs_flow_through_templates_with_native_types(h: Harness) -> None:
    await h.apply(INTAKE)
    run = await h.start("intake", {"url": "http://x/doc.pdf"})
    [job] = await h.claim()
    assert job.kind == "extract" and job.payload == {"url": "http://x/doc.pdf"}
    await h.complete(job, {"amount": 50, "lines": ["a", "b", "c"]})
    run = await h.advance(run)
    jobs = await h.claim()
    by_kind = {j.kind: j for j in jobs}
    assert by_kind["add"].payload == {"amount": 50, "lines": ["a", "b", "c"]}
    assert sorted(j.payload["line"] for j in jobs if j.kind == "fetch") == ["a", "b"]


async def test_a_false_when_skips_the_step_and_its_dependants(h: Harness) -> None:
    await h.apply(INTAKE)
    run = await h.start("intake", {"url": "u"})
    run = await h.drive(run, {"extract": {"amount": 5, "lines": []}})
    assert run.state is RunState.SUCCEEDED
    assert h.states(run) == {
        "text": "succeeded",
        "total": "succeeded",
        "tell": "skipped",
        "each": "succeeded",
        "after_tell": "skipped",
    }
    assert run.step("each").output == []
    assert run.step("tell").error is None
    assert "skipped" in (run.step("after_tell").error or "")


async def test_a_true_when_runs_the_step(h: Harness) -> None:
    await h.apply(INTAKE)
    run = await h.start("intake", {"url": "u", "limit": 10})
    run = await h.drive(run, {"extract": {"amount": 50, "lines": ["x"]}})
    assert run.step("tell").state is StepState.SUCCEEDED
    assert run.step("tell").output == {"message": "total is 50"}
    assert run.step("after_tell").state is StepState.SUCCEEDED


async def test_if_skipped_run_opts_a_dependant_in(h: Harness) -> None:
    await h.apply("""
name: optin
steps:
  - {id: a, kind: noop, when: "{{ false }}"}
  - {id: b, kind: noop, needs: [a], if_skipped: run, with: {a: "{{ steps.a.state }}"}}
""")
    run = await h.drive(await h.start("optin"))
    assert h.states(run) == {"a": "skipped", "b": "succeeded"}
    assert run.step("b").output == {"a": "skipped"}


async def test_for_each_fans_out_at_most_max_parallel_at_a_time_and_keeps_order(
    h: Harness,
) -> None:
    await h.apply("""
name: fan
inputs: {items: array}
steps:
  - id: each
    kind: fetch
    for_each: "{{ inputs.items }}"
    max_parallel: 2
    with: {x: "{{ item * 10 }}"}
""")
    run = await h.start("fan", {"items": [1, 2, 3, 4, 5]})
    seen = []
    while not run.state.is_terminal:
        jobs = await h.claim()
        assert len(jobs) <= 2
        seen.append(len(jobs))
        for job in reversed(jobs):
            await h.complete(job, job.payload["x"])
        run = await h.advance(run)
    assert seen == [2, 2, 1]
    assert run.step("each").output == [10, 20, 30, 40, 50]
    assert run.step("each").attempts == 5


async def test_stop_policy_fails_the_run_and_cancels_what_is_open(h: Harness) -> None:
    await h.apply("""
name: stop
steps:
  - {id: a, kind: extract}
  - {id: slow, kind: fetch}
  - {id: b, kind: noop, needs: [a]}
""")
    run = await h.start("stop")
    jobs = {j.kind: j for j in await h.claim()}
    await h.complete(jobs["extract"], state=JobState.FAILED, error="bad pdf")
    run = await h.advance(run)
    assert run.state is RunState.FAILED
    assert "bad pdf" in (run.error or "")
    assert h.states(run) == {"a": "failed", "slow": "cancelled", "b": "cancelled"}
    slow = await h.store.get(TENANT, jobs["fetch"].id)
    assert slow is not None and slow.state is JobState.CANCELLED


async def test_continue_policy_finishes_independent_branches(h: Harness) -> None:
    await h.apply("""
name: cont
on_failure: continue
steps:
  - {id: a, kind: extract}
  - {id: b, kind: noop, needs: [a]}
  - {id: c, kind: fetch}
  - {id: d, kind: noop, needs: [c]}
""")
    run = await h.drive(await h.start("cont"), fail={"extract"})
    assert run.state is RunState.FAILED
    assert h.states(run) == {"a": "failed", "b": "skipped", "c": "succeeded", "d": "succeeded"}


async def test_a_template_failing_at_run_time_fails_the_step_with_its_error(h: Harness) -> None:
    await h.apply("""
name: tpl
steps:
  - {id: a, kind: extract}
  - {id: b, kind: noop, needs: [a], with: {v: "{{ steps.a.output.missing.deeper }}"}}
""")
    run = await h.drive(await h.start("tpl"), {"extract": {"x": 1}})
    assert run.state is RunState.FAILED
    assert run.step("b").state is StepState.FAILED
    assert "missing" in (run.step("b").error or "")


async def test_for_each_of_a_non_list_fails_the_step(h: Harness) -> None:
    await h.apply("""
name: nonlist
inputs: {x: any}
steps:
  - {id: a, kind: noop, for_each: "{{ inputs.x }}"}
""")
    run = await h.drive(await h.start("nonlist", {"x": 3}))
    assert "expected a list" in (run.step("a").error or "")


async def test_cancelling_a_run_cancels_its_running_jobs(h: Harness) -> None:
    await h.apply(INTAKE)
    run = await h.start("intake", {"url": "u"})
    [job] = await h.claim()
    run = await h.service.cancel_run(TENANT, run.id)
    assert run.state is RunState.CANCELLED
    assert {s.state for s in run.steps} == {StepState.CANCELLED}
    stored = await h.store.get(TENANT, job.id)
    assert stored is not None and stored.state is JobState.CANCELLED
    with pytest.raises(Conflict):
        await h.service.cancel_run(TENANT, run.id)


async def test_retry_reruns_failed_steps_and_keeps_finished_outputs(h: Harness) -> None:
    await h.apply("""
name: retry
steps:
  - {id: a, kind: extract}
  - {id: b, kind: fetch, needs: [a], with: {v: "{{ steps.a.output }}"}}
""")
    run = await h.drive(await h.start("retry"), {"extract": 7}, fail={"fetch"})
    assert h.states(run) == {"a": "succeeded", "b": "failed"}
    first_a_job = run.step("a").jobs[0]
    run = await h.service.retry_run(TENANT, run.id)
    assert run.state is RunState.RUNNING
    run = await h.drive(run, {"extract": 99})
    assert run.state is RunState.SUCCEEDED
    assert run.step("a").jobs[0] == first_a_job and run.step("a").output == 7
    assert run.step("b").output == {"v": 7}
    assert run.step("b").tries == 1
    with pytest.raises(Conflict):
        await h.service.retry_run(TENANT, run.id)


async def test_advancing_again_after_a_lost_save_reuses_the_submitted_jobs(h: Harness) -> None:
    """A crash between "job submitted" and "run saved": the next advance finds the same job
    through its idempotency key instead of submitting a second one."""
    await h.apply(INTAKE)
    run = await h.start("intake", {"url": "u"})
    stored = await h.store.get_run(TENANT, run.id)
    assert stored is not None
    first = stored.step("text").jobs[0]
    # Simulate the lost save: put the run back as it was before the first advance.
    lost = stored.copy()
    lost.step("text").state, lost.step("text").jobs = StepState.PENDING, []
    from faena.ports.workflows import SaveRunParams

    assert await h.store.save_run(SaveRunParams(lost)) is not None
    run = await h.advance(run)
    assert run.step("text").jobs == [first]
    assert len(await h.claim()) == 1


async def test_runs_pin_the_version_they_started_with(h: Harness) -> None:
    assert await h.apply("name: v\nsteps: [{id: a, kind: noop, with: {v: 1}}]") == 1
    run = await h.start("v")
    assert await h.apply("name: v\nsteps: [{id: a, kind: noop, with: {v: 2}}]") == 2
    assert await h.apply("name: v\nsteps: [{id: a, kind: noop, with: {v: 2}}]") == 2
    run = await h.drive(run)
    assert run.version == 1 and run.step("a").output == {"v": 1}
    second = await h.drive(await h.start("v"))
    assert second.version == 2 and second.step("a").output == {"v": 2}


async def test_inputs_are_checked_by_type_with_defaults(h: Harness) -> None:
    await h.apply(INTAKE)
    with pytest.raises(ValidationError, match="missing input 'url'"):
        await h.start("intake", {})
    with pytest.raises(ValidationError, match="must be of type integer"):
        await h.start("intake", {"url": "u", "limit": "ten"})
    with pytest.raises(ValidationError, match="unknown input"):
        await h.start("intake", {"url": "u", "other": 1})
    run = await h.start("intake", {"url": "u"})
    assert run.inputs == {"url": "u", "limit": 100}
    with pytest.raises(NotFound):
        await h.start("nope")


async def test_a_run_idempotency_key_starts_one_run(h: Harness) -> None:
    await h.apply(INTAKE)
    first, created = await h.service.start(TENANT, "intake", {"url": "u"}, idempotency_key="k")
    again, created_again = await h.service.start(
        TENANT, "intake", {"url": "u"}, idempotency_key="k"
    )
    assert created and not created_again and again.id == first.id


async def test_runs_are_listed_newest_first_and_filtered(h: Harness) -> None:
    from faena.ports.workflows import ListRunsParams

    await h.apply(INTAKE)
    await h.apply("name: other\nsteps: [{id: a, kind: noop}]")
    a = await h.start("intake", {"url": "u"})
    b = await h.start("other")
    page = await h.service.list_runs(ListRunsParams(TENANT))
    assert [r.id for r in page.runs] == [b.id, a.id]
    page = await h.service.list_runs(ListRunsParams(TENANT, workflow="intake"))
    assert [r.id for r in page.runs] == [a.id]
    page = await h.service.list_runs(ListRunsParams(TENANT, limit=1))
    assert page.next_cursor == b.id
    page = await h.service.list_runs(ListRunsParams(TENANT, limit=1, cursor=page.next_cursor))
    assert [r.id for r in page.runs] == [a.id]
    assert [
        r.id
        for r in await h.store.list_active_runs(
            __import__("faena.ports.workflows").ports.workflows.ActiveRunsParams()
        )
    ] == [a.id, b.id]


async def test_advancing_many_runs_together_submits_and_saves_them_in_one_go(h: Harness) -> None:
    await h.apply(INTAKE)
    runs = [await h.start("intake", {"url": f"u/{i}"}) for i in range(3)]
    for job in await h.claim():
        await h.complete(job, {"amount": 1, "lines": ["x"]})
    await h.engine.advance_many([(TENANT, r.id) for r in runs])
    for run in runs:
        stored = await h.store.get_run(TENANT, run.id)
        assert stored is not None and stored.step("text").state is StepState.SUCCEEDED
        assert stored.step("total").state is StepState.RUNNING
        assert all(stored.step("each").jobs)
    assert len(await h.claim()) == 6  # total and each for every run, submitted once
    await h.engine.advance_many([(TENANT, r.id) for r in runs])  # nothing new: no change
    assert len(await h.claim()) == 0
