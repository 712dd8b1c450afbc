"""The workflow engine: turns a run's steps into jobs as their needs finish.

``advance`` is an idempotent function of stored state: it reads the run and the jobs of its
running steps, decides what follows (finish steps, skip, fan out, submit, fail, cancel) and saves
the run with a compare-and-swap. Step jobs carry deterministic idempotency keys
(``wf:{run}:{step}:{item}:{try}``), so advancing again after a crash finds the jobs already
submitted instead of submitting twice. Advances are triggered by terminal ``job.state`` events of
step jobs and by a periodic sweep of running runs (also at start), which repairs whatever a crash
or another server left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import closing
from typing import Any, Protocol

import structlog

from faena.domain.errors import Conflict, FaenaError, NotFound, ValidationError
from faena.domain.events import Event
from faena.domain.jobs import Job, JobState
from faena.domain.runs import OutboxEvent, Run, RunState, StepRun, StepState
from faena.domain.templates import TemplateError, render_value
from faena.domain.workflows import MAX_FAN_OUT, StepDef, WorkflowDef, parse_workflow
from faena.ports.bus import EventBus
from faena.ports.clock import Clock
from faena.ports.store import JobStore
from faena.ports.workflows import (
    ActiveRunsParams,
    GetVersionParams,
    SaveRunParams,
    WorkflowStore,
)
from faena.services.orchestrator import MAX_BATCH, JobRequest, Orchestrator

log = structlog.get_logger("faena.workflows")

SAVE_ATTEMPTS = 10
ADVANCERS = 4
ADVANCE_BATCH = 200  # runs advanced together: one submit and one save transaction


class _Batch:
    """Jobs of several runs' steps, submitted together (one store transaction per tenant)."""

    def __init__(self) -> None:
        self.items: list[tuple[Run, StepRun, list[int], list[JobRequest]]] = []

    def add(self, run: Run, step: StepRun, indexes: list[int], requests: list[JobRequest]) -> None:
        self.items.append((run, step, indexes, requests))

    async def submit(
        self, orchestrator: Orchestrator, job_runs: dict[str, tuple[str, str]]
    ) -> None:
        by_tenant: dict[str, list[tuple[Run, StepRun, list[int], list[JobRequest]]]] = {}
        for item in self.items:
            by_tenant.setdefault(item[0].tenant, []).append(item)
        for tenant, group in by_tenant.items():
            requests = [r for *_, reqs in group for r in reqs]
            submitted = []
            for start in range(0, len(requests), MAX_BATCH):
                submitted += await orchestrator.submit(tenant, requests[start : start + MAX_BATCH])
            it = iter(submitted)
            for run, step, indexes, _ in group:
                for i in indexes:
                    job = next(it).job
                    step.jobs[i] = job.id
                    job_runs[job.id] = (tenant, run.id)


class Store(JobStore, WorkflowStore, Protocol):
    """A store that keeps both jobs and workflows (every faena adapter)."""


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


def bus_event(event: OutboxEvent) -> Event:
    return Event(type=event.type, tenant=event.tenant, data=dict(event.data), ts=event.ts)


class WorkflowEngine:
    def __init__(
        self,
        store: Store,
        orchestrator: Orchestrator,
        bus: EventBus,
        clock: Clock,
        *,
        sweep_s: float = 2.0,
    ) -> None:
        self.store = store
        self.orchestrator = orchestrator
        self.bus = bus
        self.clock = clock
        self.sweep_s = sweep_s
        self._definitions: dict[tuple[str, str, int], WorkflowDef] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._job_runs: dict[str, tuple[str, str]] = {}  # job id -> (tenant, run id)
        self._dirty: dict[str, str] = {}  # run id -> tenant, waiting for an advancer
        self._again: dict[str, str] = {}  # run id -> tenant: advance after the current one
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._listeners: list[Callable[[Run, Run | None], None]] = []

    def on_run_change(self, listener: Callable[[Run, Run | None], None]) -> None:
        """Call ``listener(new, old)`` after each saved change of a run (triggers use it)."""
        self._listeners.append(listener)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._listen(), name="workflow-events"))
        self._tasks.append(loop.create_task(self._sweep_forever(), name="workflow-sweep"))
        for i in range(ADVANCERS):
            self._tasks.append(loop.create_task(self._advancer(), name=f"workflow-advance-{i}"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def busy(self, run_id: str) -> bool:
        """True while this process is advancing ``run_id``."""
        lock = self._locks.get(run_id)
        return lock is not None and lock.locked()

    def mark(self, tenant: str, run_id: str) -> None:
        """Advance ``run_id`` soon (coalesced: a run waits in the queue at most once)."""
        if run_id not in self._dirty:
            self._dirty[run_id] = tenant
            self._queue.put_nowait(run_id)

    async def _advancer(self) -> None:
        while True:
            ids = [await self._queue.get()]
            while len(ids) < ADVANCE_BATCH and not self._queue.empty():
                ids.append(self._queue.get_nowait())
            items = [(t, r) for r in ids if (t := self._dirty.pop(r, None)) is not None]
            try:
                await self.advance_many(items)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the sweep retries; one bad run must not stop the engine
                log.warning("advancing runs failed", runs=len(items), error=repr(e))
            await asyncio.sleep(0)  # a queue that never empties must not starve the loop

    async def advance_many(self, items: Sequence[tuple[str, str]]) -> None:
        """Advance several runs with one submission of all their new jobs and one transaction
        saving them all (group commit); a run whose save lost its compare-and-swap is marked
        to be advanced again."""
        locks: list[asyncio.Lock] = []
        try:
            mine: list[tuple[str, str]] = []
            for tenant, run_id in items:
                lock = self._lock(run_id)
                if lock.locked():  # being advanced right now: again once that is done
                    self._again[run_id] = tenant
                    continue
                await lock.acquire()
                locks.append(lock)
                mine.append((tenant, run_id))
            await self._advance_locked(mine)
        finally:
            for lock in locks:
                lock.release()
            self._mark_again(run_id for _, run_id in items)

    def _mark_again(self, run_ids: Iterable[str]) -> None:
        for run_id in run_ids:
            tenant = self._again.get(run_id)
            if tenant is not None and not self.busy(run_id):
                del self._again[run_id]
                self.mark(tenant, run_id)

    async def _advance_locked(self, items: Sequence[tuple[str, str]]) -> None:
        """Per tenant: one read of the runs, one of their running steps' jobs; then one
        submission of every new job and one transaction saving every changed run."""
        batch = _Batch()
        work: list[tuple[Run, Run, list[OutboxEvent]]] = []
        for live, jobs in await self._read_batch(items):
            for stored in live:
                run = stored.copy()
                work.append((stored, run, await self._advance_once(run, batch, jobs)))
        await batch.submit(self.orchestrator, self._job_runs)
        now = self.clock.now()
        changed: list[tuple[Run, Run, list[OutboxEvent]]] = []
        for stored, run, events in work:
            if events or not _same(run, stored):
                changed.append((stored, run, events))
            else:
                self._forget_if_done(stored)
        if not changed:
            return
        for _, run, _ in changed:
            run.updated_at = now
        results = await self.store.save_runs(
            [SaveRunParams(run=r, events=e) for _, r, e in changed]
        )
        for (stored, run, events), saved in zip(changed, results, strict=True):
            if saved is None:
                self.mark(run.tenant, run.id)
                continue
            self.bus.publish([bus_event(e) for e in events])
            self._forget_if_done(saved)
            for listener in self._listeners:
                listener(saved, stored)

    async def _read_batch(
        self, items: Sequence[tuple[str, str]]
    ) -> list[tuple[list[Run], dict[str, Job]]]:
        """Per tenant, its running runs among ``items`` and their running steps' jobs."""
        by_tenant: dict[str, list[str]] = {}
        for tenant, run_id in items:
            by_tenant.setdefault(tenant, []).append(run_id)
        out: list[tuple[list[Run], dict[str, Job]]] = []
        for tenant, run_ids in by_tenant.items():
            live: list[Run] = []
            for stored in await self.store.get_runs(tenant, run_ids):
                if stored.state.is_terminal:
                    self._forget_if_done(stored)
                else:
                    live.append(stored)
            out.append((live, await self._load_jobs(tenant, live)))
        return out

    async def _listen(self) -> None:
        with closing(self.bus.subscribe()) as sub:
            while True:
                event = await sub.get()
                if event.type != "job.state" or event.job_id is None:
                    continue
                state = event.data.get("state")
                if state not in ("succeeded", "failed", "cancelled"):
                    continue
                found = self._job_runs.get(event.job_id)
                if found is not None:
                    self.mark(*found)

    async def _sweep_forever(self) -> None:
        older_than_s: float | None = None  # the first sweep (at start) takes every run
        while True:
            try:
                await self.sweep(older_than_s=older_than_s)
                older_than_s = self.sweep_s
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("workflow sweep failed", error=repr(e))
            await asyncio.sleep(self.sweep_s)

    async def sweep(self, *, older_than_s: float | None = None) -> int:
        """Mark running runs for an advance — those not changed for ``older_than_s`` seconds
        (events drive the others), or all; return how many."""
        after: str | None = None
        count = 0
        horizon = None if older_than_s is None else self.clock.now() - older_than_s
        while True:
            runs = await self.store.list_active_runs(ActiveRunsParams(limit=500, after=after))
            for run in runs:
                if horizon is None or run.updated_at <= horizon:
                    self.mark(run.tenant, run.id)
                    count += 1
            if len(runs) < 500:
                return count
            after = runs[-1].id

    # -- definitions -------------------------------------------------------------------------

    async def definition(self, tenant: str, name: str, version: int) -> WorkflowDef:
        key = (tenant, name, version)
        found = self._definitions.get(key)
        if found is None:
            stored = await self.store.get_workflow_version(GetVersionParams(tenant, name, version))
            if stored is None:
                raise NotFound(f"no version {version} of workflow {name!r}")
            found = parse_workflow(stored.definition)
            self._definitions[key] = found
        return found

    # -- advancing ---------------------------------------------------------------------------

    def _lock(self, run_id: str) -> asyncio.Lock:
        lock = self._locks.get(run_id)
        if lock is None:
            lock = self._locks[run_id] = asyncio.Lock()
        return lock

    async def advance(self, tenant: str, run_id: str, *, stored: Run | None = None) -> Run | None:
        """Bring the run as far as stored state allows; return it as saved. ``stored``: the
        run as just written by the caller (a new run), which saves reading it back."""
        try:
            async with self._lock(run_id):
                return await self._change(tenant, run_id, self._advance_alone, stored)
        finally:
            self._mark_again([run_id])

    async def _change(
        self,
        tenant: str,
        run_id: str,
        step: Callable[[Run], Awaitable[list[OutboxEvent]]],
        first: Run | None = None,
    ) -> Run | None:
        """Load (or take ``first``), apply ``step`` (which changes a copy and returns the
        events), save with a compare-and-swap unless nothing changed; reload and repeat when
        another writer won."""
        for _ in range(SAVE_ATTEMPTS):
            stored, first = first or await self.store.get_run(tenant, run_id), None
            if stored is None:
                return None
            run = stored.copy()
            events: list[OutboxEvent] = await step(run)
            if not events and _same(run, stored):
                self._forget_if_done(stored)
                return stored
            run.updated_at = self.clock.now()
            saved = await self.store.save_run(SaveRunParams(run=run, events=events))
            if saved is None:
                continue
            self.bus.publish([bus_event(e) for e in events])
            self._forget_if_done(saved)
            for listener in self._listeners:
                listener(saved, stored)
            return saved
        raise Conflict(f"run {run_id} is changing too fast; try again")

    def _forget_if_done(self, run: Run) -> None:
        for step in run.steps:
            for job_id in step.jobs:
                if job_id is None:
                    continue
                if run.state.is_terminal or step.state.is_terminal:
                    self._job_runs.pop(job_id, None)
                else:
                    self._job_runs[job_id] = (run.tenant, run.id)
        if run.state.is_terminal:
            lock = self._locks.get(run.id)
            if lock is not None and not lock.locked():
                del self._locks[run.id]

    async def _load_jobs(self, tenant: str, runs: Iterable[Run]) -> dict[str, Job]:
        """The jobs of the running steps of ``runs`` (one store read), by id."""
        ids = [
            job_id
            for run in runs
            for step in run.steps
            if step.state is StepState.RUNNING
            for job_id in step.jobs
            if job_id is not None
        ]
        if not ids:
            return {}
        return {job.id: job for job in await self.store.get_many(tenant, ids)}

    async def _advance_alone(self, run: Run) -> list[OutboxEvent]:
        """``_advance_once`` outside a batch: reads the run's step jobs itself."""
        return await self._advance_once(run, None, await self._load_jobs(run.tenant, [run]))

    async def _advance_once(
        self, run: Run, pending: _Batch | None, jobs: dict[str, Job]
    ) -> list[OutboxEvent]:
        if run.state.is_terminal:
            return []
        wf = await self.definition(run.tenant, run.workflow, run.version)
        now = self.clock.now()
        before = {s.id: s.state for s in run.steps}
        to_cancel: list[str] = []
        for step in run.steps:
            if step.state is StepState.RUNNING:
                await self._refresh(
                    run,
                    wf.step(step.id),
                    step,
                    now,
                    to_cancel=to_cancel,
                    pending=pending,
                    known=jobs,
                )
        failed = [s for s in run.steps if s.state is StepState.FAILED]
        if failed and wf.on_failure == "stop":
            self._stop(run, f"step {failed[0].id!r} failed: {failed[0].error}", now, to_cancel)
        else:
            progressed = True
            while progressed:  # a skip can unblock further steps in the same advance
                progressed = False
                for step_id in wf.topological_order():
                    step = run.step(step_id)
                    if step.state is StepState.PENDING and await self._start(
                        run, wf.step(step_id), step, now, pending=pending, known=jobs
                    ):
                        progressed = True
                failed = [s for s in run.steps if s.state is StepState.FAILED]
                if failed and wf.on_failure == "stop":
                    self._stop(
                        run, f"step {failed[0].id!r} failed: {failed[0].error}", now, to_cancel
                    )
                    break
        if all(s.state.is_terminal for s in run.steps) and not run.state.is_terminal:
            bad = [s for s in run.steps if s.state in (StepState.FAILED, StepState.CANCELLED)]
            run.state = RunState.FAILED if bad else RunState.SUCCEEDED
            if bad and run.error is None:
                run.error = f"step {bad[0].id!r} {bad[0].state.value}: {bad[0].error}"
            run.finished_at = now
        await self._cancel_jobs(run.tenant, to_cancel)
        events = [step_event(run, s, now) for s in run.steps if before[s.id] is not s.state]
        if run.state.is_terminal:
            events.append(run_event(run, now))
        return events

    def _stop(self, run: Run, error: str, now: float, to_cancel: list[str]) -> None:
        """The failure policy ``stop``: the run fails, everything still open is cancelled."""
        for step in run.steps:
            if step.state is StepState.RUNNING:
                to_cancel.extend(j for j in step.jobs if j is not None)
            if not step.state.is_terminal:
                step.state = StepState.CANCELLED
                step.error = step.error or "the run stopped: " + error
                step.finished_at = now
        run.state = RunState.FAILED
        run.error = error
        run.finished_at = now

    async def _refresh(
        self,
        run: Run,
        spec: StepDef,
        step: StepRun,
        now: float,
        *,
        to_cancel: list[str],
        pending: _Batch | None,
        known: dict[str, Job],
    ) -> None:
        """Update a running step from its jobs (``known``: read for the whole advance); submit
        more items of a fan-out."""
        jobs = [None if job_id is None else known.get(job_id) for job_id in step.jobs]
        step.attempts = sum(j.attempts for j in jobs if j is not None)
        for i, job in enumerate(jobs):
            if job is not None and job.state in (JobState.FAILED, JobState.CANCELLED):
                label = f"item {i}: " if step.items is not None else ""
                what = job.error or f"job {job.state.value}"
                step.state, step.error, step.finished_at = StepState.FAILED, label + what, now
                to_cancel.extend(j.id for j in jobs if j is not None and not j.is_terminal)
                return
        if all(j is not None and j.state is JobState.SUCCEEDED for j in jobs):
            results = [j.result for j in jobs if j is not None]
            step.output = results if step.items is not None else results[0]
            step.state, step.finished_at = StepState.SUCCEEDED, now
            return
        if any(j is None for j in step.jobs):  # a fan-out with items left to submit
            await self._submit_items(run, spec, step, now, pending=pending, known=known)

    async def _start(
        self,
        run: Run,
        spec: StepDef,
        step: StepRun,
        now: float,
        *,
        pending: _Batch | None,
        known: dict[str, Job],
    ) -> bool:
        """Start a pending step whose needs are all terminal; True if its state changed."""
        needs = [run.step(n) for n in spec.needs]
        if not all(n.state.is_terminal for n in needs):
            return False
        for need in needs:
            if need.state in (StepState.FAILED, StepState.CANCELLED):
                return _finish(
                    step, StepState.SKIPPED, now, f"needs {need.id!r}, which {need.state.value}"
                )
            if need.state is StepState.SKIPPED and spec.if_skipped != "run":
                return _finish(
                    step, StepState.SKIPPED, now, f"needs {need.id!r}, which was skipped"
                )
        context = template_context(run)
        try:
            if spec.when is not None and not render_value(spec.when, context, "when"):
                return _finish(step, StepState.SKIPPED, now, None)
            if spec.for_each is not None:
                items = fan_out_items(render_value(spec.for_each, context, "for_each"))
                step.items = items
                step.jobs = [None] * len(items)
            else:
                step.items = None
                step.jobs = [None]
        except TemplateError as e:
            return _finish(step, StepState.FAILED, now, str(e))
        step.state, step.started_at = StepState.RUNNING, now
        if not step.jobs:  # an empty fan-out succeeds at once
            step.output = []
            return _finish(step, StepState.SUCCEEDED, now, None)
        await self._submit_items(run, spec, step, now, pending=pending, known=known)
        return True

    async def _submit_items(
        self,
        run: Run,
        spec: StepDef,
        step: StepRun,
        now: float,
        *,
        pending: _Batch | None,
        known: dict[str, Job],
    ) -> None:
        """Submit the next items of ``step`` up to its ``max_parallel`` (all for a plain step);
        with a batch, only validate them and leave the submission to the batch."""
        in_flight = 0
        for job_id in step.jobs:
            if job_id is not None:
                job = known.get(job_id)
                in_flight += job is not None and not job.is_terminal
        free = (spec.max_parallel or len(step.jobs)) - in_flight
        indexes = [i for i, j in enumerate(step.jobs) if j is None][: max(free, 0)]
        if not indexes:
            return
        base = template_context(run)
        requests = []
        try:
            for i in indexes:
                context = base
                if step.items is not None:
                    context = {**base, "item": step.items[i], "index": i}
                payload = render_value(spec.with_, context, "with")
                requests.append(
                    JobRequest(
                        kind=spec.kind,
                        payload=payload,
                        queue=spec.queue,
                        priority=spec.priority,
                        labels=dict(spec.labels),
                        max_attempts=None if spec.retries is None else spec.retries + 1,
                        timeout_s=spec.timeout_s,
                        idempotency_key=job_key(run.id, step.id, i, step.tries),
                    )
                )
            if pending is not None:
                for request in requests:
                    self.orchestrator.to_spec(run.tenant, request, now)
                pending.add(run, step, indexes, requests)
                return
            submitted = await self.orchestrator.submit(run.tenant, requests)
        except (TemplateError, ValidationError) as e:
            message = e.message if isinstance(e, FaenaError) else str(e)
            _finish(step, StepState.FAILED, now, message)
            return
        for i, s in zip(indexes, submitted, strict=True):
            step.jobs[i] = s.job.id
            self._job_runs[s.job.id] = (run.tenant, run.id)

    async def _cancel_jobs(self, tenant: str, job_ids: Sequence[str]) -> None:
        for job_id in job_ids:
            with contextlib.suppress(Conflict, NotFound):
                await self.orchestrator.cancel(tenant, job_id)

    # -- cancel and retry --------------------------------------------------------------------

    async def cancel(self, tenant: str, run_id: str) -> Run:
        async def cancel_once(run: Run) -> list[OutboxEvent]:
            if run.state.is_terminal:
                raise Conflict(f"run is {run.state.value}; only a running run can be cancelled")
            now = self.clock.now()
            jobs: list[str] = []
            events: list[OutboxEvent] = []
            for step in run.steps:
                if step.state is StepState.RUNNING:
                    jobs.extend(j for j in step.jobs if j is not None)
                if not step.state.is_terminal:
                    _finish(step, StepState.CANCELLED, now, "the run was cancelled")
                    events.append(step_event(run, step, now))
            await self._cancel_jobs(run.tenant, jobs)
            run.state, run.finished_at, run.error = RunState.CANCELLED, now, "cancelled"
            return [*events, run_event(run, now)]

        async with self._lock(run_id):
            saved = await self._change(tenant, run_id, cancel_once)
        if saved is None:
            raise NotFound(f"no run {run_id!r}")
        return saved

    async def retry(self, tenant: str, run_id: str) -> Run:
        """Re-run a failed or cancelled run from its unfinished steps, keeping the outputs of
        the steps that succeeded."""

        async def retry_once(run: Run) -> list[OutboxEvent]:
            if run.state not in (RunState.FAILED, RunState.CANCELLED):
                raise Conflict(f"run is {run.state.value}; only failed or cancelled runs retry")
            now = self.clock.now()
            for step in run.steps:
                if step.state is not StepState.SUCCEEDED:
                    step.state, step.tries = StepState.PENDING, step.tries + 1
                    step.jobs, step.items, step.output, step.error = [], None, None, None
                    step.started_at = step.finished_at = None
            run.state, run.finished_at, run.error = RunState.RUNNING, None, None
            return [run_event(run, now)]

        async with self._lock(run_id):
            saved = await self._change(tenant, run_id, retry_once)
        if saved is None:
            raise NotFound(f"no run {run_id!r}")
        self.mark(tenant, run_id)
        return saved


def fan_out_items(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TemplateError(f"for_each: expected a list, got {type(value).__name__}")
    if len(value) > MAX_FAN_OUT:
        raise TemplateError(f"for_each: {len(value)} items; the limit is {MAX_FAN_OUT}")
    return value


def _same(a: Run, b: Run) -> bool:
    return (a.state, a.finished_at, a.to_doc()) == (b.state, b.finished_at, b.to_doc())


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
