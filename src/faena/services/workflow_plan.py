"""What one advance of a run decides, with no I/O: the workflow engine's rules.

:func:`plan_advance` changes a run in place from the jobs of its running steps (read by the
engine for a whole batch of runs) and returns what the engine must then do: the step jobs to
submit (their ids already in the run), the jobs to cancel, and the events of the change. The
engine stores the run, the new jobs and the events in one transaction
(:meth:`~faena.ports.workflows.WorkflowStore.advance_runs`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from faena.domain.errors import FaenaError, ValidationError
from faena.domain.ids import new_id as _new_id
from faena.domain.jobs import JobSpec, JobState
from faena.domain.runs import OutboxEvent, Run, RunState, StepRun, StepState
from faena.domain.templates import TemplateError, is_template, render_value
from faena.domain.workflows import MAX_FAN_OUT, StepDef, WorkflowDef
from faena.ports.workflows import StepJob

# The job of one item of a step, validated: (step, rendered payload, idempotency key) -> spec.
ToSpec = Callable[[StepDef, Any, str], JobSpec]
NewId = Callable[[], str]  # a fresh job id


# Enum members as module constants: looked up on their class they are slow on the hot path.
_PENDING, _RUNNING, _FAILED = StepState.PENDING, StepState.RUNNING, StepState.FAILED
_OPEN = frozenset({StepState.PENDING, StepState.RUNNING})
_BAD = frozenset({StepState.FAILED, StepState.CANCELLED})


@dataclass(frozen=True, slots=True)
class CompiledWorkflow:
    """A definition with what every advance needs precomputed: its steps in dependency order."""

    definition: WorkflowDef
    order: tuple[StepDef, ...]

    @classmethod
    def of(cls, definition: WorkflowDef) -> CompiledWorkflow:
        specs = {s.id: s for s in definition.steps}
        return cls(definition, tuple(specs[i] for i in definition.topological_order()))


@dataclass(slots=True)
class Plan:
    """The outcome of :func:`plan_advance`. ``jobs[i]`` is to be stored with id ``job_ids[i]``
    (already written into its step); ``changed`` is False when the run is as it was."""

    events: list[OutboxEvent] = field(default_factory=list)
    jobs: list[JobSpec] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)
    to_cancel: list[str] = field(default_factory=list)
    changed: bool = False


def job_key(run_id: str, step_id: str, index: int, tries: int) -> str:
    return f"wf:{run_id}:{step_id}:{index}:{tries}"


def run_event(run: Run, now: float) -> OutboxEvent:
    return OutboxEvent(
        "run.state",
        run.tenant,
        {
            "run_id": run.id,
            "workflow": run.workflow,
            "version": run.version,
            "state": run.state.value,
            "error": run.error,
        },
        now,
    )


def step_event(run: Run, step: StepRun, now: float) -> OutboxEvent:
    return OutboxEvent(
        "step.state",
        run.tenant,
        {
            "run_id": run.id,
            "workflow": run.workflow,
            "step": step.id,
            "state": step.state.value,
            "error": step.error,
        },
        now,
    )


def plan_advance(
    run: Run,
    wf: CompiledWorkflow,
    jobs: Mapping[str, StepJob],
    now: float,
    to_spec: ToSpec,
    *,
    new_id: NewId = _new_id,
) -> Plan:
    """Bring ``run`` (changed in place) as far as ``jobs`` (the jobs of its running steps, by
    id) allow: finish steps, skip, fan out, plan new jobs, fail, stop."""
    plan = Plan()
    if not run.state.is_terminal:
        _Planner(run, jobs, now, to_spec, new_id, plan).advance(wf)
    return plan


@dataclass(slots=True)
class _Planner:
    run: Run
    known: Mapping[str, StepJob]
    now: float
    to_spec: ToSpec
    new_id: NewId
    plan: Plan

    def advance(self, wf: CompiledWorkflow) -> None:
        run, now, plan = self.run, self.now, self.plan
        before = [s.state for s in run.steps]
        steps = {s.id: s for s in run.steps}
        for spec in wf.order:
            step = steps[spec.id]
            if step.state is _RUNNING:
                self._refresh(spec, step)
        failed = _first_failed(run)
        stop_policy = wf.definition.on_failure == "stop"
        if failed is None or not stop_policy:
            # One pass in dependency order suffices: a step's needs come before it, so a need
            # skipped or failed in this pass is seen by its dependants in this pass too.
            for spec in wf.order:
                step = steps[spec.id]
                if step.state is _PENDING:
                    self._start(spec, step, steps)
            failed = _first_failed(run)
        if failed is not None and stop_policy:
            self._stop(failed)
        if not run.state.is_terminal and all(s.state not in _OPEN for s in run.steps):
            bad = [s for s in run.steps if s.state in _BAD]
            run.state = RunState.FAILED if bad else RunState.SUCCEEDED
            if bad and run.error is None:
                run.error = f"step {bad[0].id!r} {bad[0].state.value}: {bad[0].error}"
            run.finished_at = now
        plan.events = [
            step_event(run, s, now)
            for s, old in zip(run.steps, before, strict=True)
            if s.state is not old
        ]
        if run.state.is_terminal:
            plan.events.append(run_event(run, now))
        plan.changed = plan.changed or bool(plan.events) or bool(plan.jobs)

    def _stop(self, failed: StepRun) -> None:
        """The failure policy ``stop``: the run fails, everything still open is cancelled
        (and jobs planned in this very advance are not submitted at all)."""
        run, now, plan = self.run, self.now, self.plan
        error = f"step {failed.id!r} failed: {failed.error}"
        planned = set(plan.job_ids)
        for step in run.steps:
            if step.state is StepState.RUNNING:
                for i, job_id in enumerate(step.jobs):
                    if job_id in planned:
                        step.jobs[i] = None
                    elif job_id is not None:
                        plan.to_cancel.append(job_id)
            if not step.state.is_terminal:
                step.state = StepState.CANCELLED
                step.error = step.error or "the run stopped: " + error
                step.finished_at = now
        plan.jobs, plan.job_ids = [], []
        run.state = RunState.FAILED
        run.error = error
        run.finished_at = now

    def _refresh(self, spec: StepDef, step: StepRun) -> None:
        """Update a running step from its jobs; plan more items of a fan-out."""
        jobs = [None if job_id is None else self.known.get(job_id) for job_id in step.jobs]
        attempts = sum(j.attempts for j in jobs if j is not None)
        if attempts != step.attempts:
            step.attempts = attempts
            self.plan.changed = True
        for i, job in enumerate(jobs):
            if job is not None and job.state in (JobState.FAILED, JobState.CANCELLED):
                label = f"item {i}: " if step.items is not None else ""
                what = job.error or f"job {job.state.value}"
                step.state, step.error, step.finished_at = StepState.FAILED, label + what, self.now
                self.plan.to_cancel.extend(
                    j.id for j in jobs if j is not None and not j.is_terminal
                )
                return
        if all(j is not None and j.state is JobState.SUCCEEDED for j in jobs):
            results = [j.result for j in jobs if j is not None]
            step.output = results if step.items is not None else results[0]
            step.state, step.finished_at = StepState.SUCCEEDED, self.now
            return
        if any(j is None for j in step.jobs):  # a fan-out with items left to submit
            self._plan_items(spec, step)

    def _start(self, spec: StepDef, step: StepRun, steps: Mapping[str, StepRun]) -> bool:
        """Start a pending step whose needs are all terminal; True if its state changed."""
        now = self.now
        needs = [steps[n] for n in spec.needs]
        for need in needs:
            if need.state in _OPEN:
                return False
        for need in needs:
            if need.state in _BAD:
                return _finish(
                    step, StepState.SKIPPED, now, f"needs {need.id!r}, which {need.state.value}"
                )
            if need.state is StepState.SKIPPED and spec.if_skipped != "run":
                return _finish(
                    step, StepState.SKIPPED, now, f"needs {need.id!r}, which was skipped"
                )
        if spec.when is not None or spec.for_each is not None:
            context = template_context(self.run)
            try:
                if spec.when is not None and not render_value(spec.when, context, "when"):
                    return _finish(step, StepState.SKIPPED, now, None)
                if spec.for_each is not None:
                    items = fan_out_items(render_value(spec.for_each, context, "for_each"))
                    step.items = items
                    step.jobs = [None] * len(items)
            except TemplateError as e:
                return _finish(step, StepState.FAILED, now, str(e))
        if spec.for_each is None:
            step.items = None
            step.jobs = [None]
        step.state, step.started_at = StepState.RUNNING, now
        if not step.jobs:  # an empty fan-out succeeds at once
            step.output = []
            return _finish(step, StepState.SUCCEEDED, now, None)
        self._plan_items(spec, step)
        return True

    def _plan_items(self, spec: StepDef, step: StepRun) -> None:
        """Plan the jobs of the next items of ``step`` up to its ``max_parallel`` (all for a
        plain step); a payload that fails to render or validate fails the step instead."""
        run = self.run
        in_flight = 0
        for job_id in step.jobs:
            if job_id is not None:
                job = self.known.get(job_id)
                in_flight += job is not None and not job.is_terminal
        free = (spec.max_parallel or len(step.jobs)) - in_flight
        indexes = [i for i, j in enumerate(step.jobs) if j is None][: max(free, 0)]
        if not indexes:
            return
        base = template_context(run) if _has_template(spec.with_) else None
        specs = []
        try:
            for i in indexes:
                if base is None:
                    payload = _plain_copy(spec.with_)
                else:
                    context = base
                    if step.items is not None:
                        context = {**base, "item": step.items[i], "index": i}
                    payload = render_value(spec.with_, context, "with")
                specs.append(self.to_spec(spec, payload, job_key(run.id, step.id, i, step.tries)))
        except (TemplateError, ValidationError) as e:
            message = e.message if isinstance(e, FaenaError) else str(e)
            _finish(step, StepState.FAILED, self.now, message)
            return
        for i in indexes:
            step.jobs[i] = job_id = self.new_id()
            self.plan.job_ids.append(job_id)
        self.plan.jobs.extend(specs)


def _first_failed(run: Run) -> StepRun | None:
    for s in run.steps:
        if s.state is _FAILED:
            return s
    return None


def _has_template(value: Any) -> bool:
    """Whether rendering ``value`` could change it (a string in it is a template)."""
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    if isinstance(value, dict):
        return any(_has_template(k) or _has_template(v) for k, v in value.items())
    return False


def _plain_copy(value: Any) -> Any:
    """``value`` as rendering would return it when it holds no template (a fresh copy)."""
    if isinstance(value, list):
        return [_plain_copy(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain_copy(v) for k, v in value.items()}
    return value


def fan_out_items(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TemplateError(f"for_each: expected a list, got {type(value).__name__}")
    if len(value) > MAX_FAN_OUT:
        raise TemplateError(f"for_each: {len(value)} items; the limit is {MAX_FAN_OUT}")
    return value


def _finish(step: StepRun, state: StepState, now: float, error: str | None) -> bool:
    step.state, step.error, step.finished_at = state, error, now
    if step.started_at is None and state is not StepState.SKIPPED:
        step.started_at = now
    return True


def template_context(run: Run) -> dict[str, Any]:
    """What templates see: ``inputs``, ``steps.<id>.output|state|error`` and ``run``."""
    return {
        "inputs": run.inputs,
        "steps": {
            s.id: {"output": s.output, "state": s.state.value, "error": s.error}
            for s in run.steps
            if s.state.is_terminal
        },
        "run": {"id": run.id, "workflow": run.workflow, "version": run.version},
    }
