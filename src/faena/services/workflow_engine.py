"""The workflow engine: turns a run's steps into jobs as their needs finish.

Advancing a run is an idempotent function of stored state: the engine takes the run and the jobs
of its running steps, decides what follows (:func:`~faena.services.workflow_plan.plan_advance`)
and stores the run, the step jobs it submits and its events in **one** transaction
(``WorkflowStore.advance_runs``), with a compare-and-swap on the run's revision. Step jobs carry
deterministic idempotency keys (``wf:{run}:{step}:{item}:{try}``), so a run advanced again from
an older copy refers to the jobs already stored instead of submitting twice.

The hot path is batched at every stage: the terminal ``job.state`` events of step jobs mark runs,
advancers take the marked runs in batches (one read of their running steps' jobs per tenant),
and concurrent writes — advances and new runs alike — share transactions (group commit). The
engine keeps its own copy of the runs it advances (the run as it last stored it), so it never
reads back what it wrote; a copy made stale by another writer (another server, a cancel) only
loses its compare-and-swap, and the run is read again. A periodic sweep of running runs (also
at start) repairs whatever a crash or another server left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass, fields, replace
from functools import partial
from typing import Any, Protocol

import structlog

from faena.domain.errors import Conflict, NotFound
from faena.domain.events import Event
from faena.domain.ids import new_ids
from faena.domain.jobs import MAX_NAME_LENGTH, Job, JobSpec
from faena.domain.runs import OutboxEvent, Run, RunState, StepState
from faena.domain.workflows import StepDef, WorkflowDef, parse_workflow
from faena.ports.bus import EventBus
from faena.ports.clock import Clock
from faena.ports.store import JobStore
from faena.ports.workflows import (
    ActiveRunsParams,
    AdvancedRun,
    AdvanceRunsParams,
    GetVersionParams,
    RunChange,
    StepJob,
    WorkflowStore,
)
from faena.services.batching import GroupCommitter
from faena.services.orchestrator import JobRequest, Orchestrator, state_event
from faena.services.workflow_plan import (
    CompiledWorkflow,
    plan_advance,
    run_event,
    step_event,
)

log = structlog.get_logger("faena.workflows")

SAVE_ATTEMPTS = 10
ADVANCERS = 4
ADVANCE_BATCH = 200  # runs taken by one advancer at once
COMMIT_BATCH = 64  # callers whose run changes share one transaction at most
MAX_CACHED_RUNS = 20_000  # runs whose latest copy the engine keeps (beyond: read when needed)


class Store(JobStore, WorkflowStore, Protocol):
    """A store that keeps both jobs and workflows (every faena adapter)."""


def bus_event(event: OutboxEvent) -> Event:
    return Event(type=event.type, tenant=event.tenant, data=dict(event.data), ts=event.ts)


@dataclass(slots=True)
class _Pending:
    """The run changes of one caller, written by the next group commit."""

    changes: Sequence[RunChange]
    done: asyncio.Future[list[AdvancedRun]]


_SPEC_FIELDS = tuple(f.name for f in fields(JobSpec))
_PAYLOAD, _KEY = _SPEC_FIELDS.index("payload"), _SPEC_FIELDS.index("idempotency_key")


def _request(step: StepDef, payload: Any, key: str) -> JobRequest:
    return JobRequest(
        kind=step.kind,
        payload=payload,
        queue=step.queue,
        priority=step.priority,
        labels=dict(step.labels),
        max_attempts=None if step.retries is None else step.retries + 1,
        timeout_s=step.timeout_s,
        idempotency_key=key,
    )


class _IdPool:
    """Job ids for one batch of plans, drawn ``hint`` at a time (one draw of randomness where
    each job would make its own)."""

    def __init__(self, hint: int) -> None:
        self._size = min(max(hint, 1), 1000)
        self._ids: list[str] = []

    def __call__(self) -> str:
        if not self._ids:
            self._ids = new_ids(self._size)
            self._ids.reverse()
        return self._ids.pop()


@dataclass(slots=True)
class _Advanced:
    """What one pass over a batch of runs did: the runs as they are now (saved or unchanged),
    those whose save lost its compare-and-swap, and those to advance once more (a job found by
    its idempotency key had already finished)."""

    runs: dict[str, Run]
    lost: list[tuple[str, str]]
    again: list[tuple[str, str]]


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
        self._definitions: dict[tuple[str, str, int], CompiledWorkflow] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._runs: dict[str, Run] = {}  # run id -> the run as this engine last stored/read it
        self._job_runs: dict[str, tuple[str, str]] = {}  # job id -> (tenant, run id)
        self._dirty: dict[str, str] = {}  # run id -> tenant, waiting for an advancer
        self._again: dict[str, str] = {}  # run id -> tenant: advance after the current one
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._commits: GroupCommitter[_Pending] = GroupCommitter(
            self._write, max_batch=COMMIT_BATCH, name="workflow-runs"
        )

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
        await self._commits.drain()

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

    def _ends_a_step(self, event: Event) -> bool:
        """The bus filter: a job of a step this engine follows reached a terminal state."""
        return (
            event.type == "job.state"
            and event.job_id in self._job_runs
            and event.data.get("state") in ("succeeded", "failed", "cancelled")
        )

    async def _listen(self) -> None:
        with closing(self.bus.subscribe(where=self._ends_a_step)) as sub:
            while True:
                event = await sub.get()
                found = self._job_runs.get(event.job_id or "")
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
        (events drive the others), or all; return how many. The runs read here refresh the
        engine's copies that another writer made stale."""
        after: str | None = None
        count = 0
        horizon = None if older_than_s is None else self.clock.now() - older_than_s
        while True:
            runs = await self.store.list_active_runs(ActiveRunsParams(limit=500, after=after))
            for run in runs:
                mine = self._runs.get(run.id)
                if mine is not None and mine.revision < run.revision:
                    self._runs[run.id] = run
                if horizon is None or run.updated_at <= horizon:
                    self.mark(run.tenant, run.id)
                    count += 1
            if len(runs) < 500:
                return count
            after = runs[-1].id

    # -- definitions -------------------------------------------------------------------------

    async def definition(self, tenant: str, name: str, version: int) -> WorkflowDef:
        return (await self._compiled(tenant, name, version)).definition

    async def _compiled(self, tenant: str, name: str, version: int) -> CompiledWorkflow:
        key = (tenant, name, version)
        found = self._definitions.get(key)
        if found is None:
            stored = await self.store.get_workflow_version(GetVersionParams(tenant, name, version))
            if stored is None:
                raise NotFound(f"no version {version} of workflow {name!r}")
            found = CompiledWorkflow.of(parse_workflow(stored.definition))
            self._definitions[key] = found
        return found

    # -- new runs ----------------------------------------------------------------------------

    async def create_runs(self, runs: Sequence[Run]) -> list[tuple[Run, bool]]:
        """Store new runs with the jobs of their first steps, in one transaction shared with
        concurrent writers; per run, the run as stored and True, or the run already holding
        its idempotency key and False."""
        if not runs:
            return []
        now = self.clock.now()
        to_spec = self._spec_maker(now)
        ids = _IdPool(len(runs))
        changes = []
        for run in runs:
            wf = await self._compiled(run.tenant, run.workflow, run.version)
            started = run_event(run, now)
            plan = plan_advance(run, wf, {}, now, partial(to_spec, run.tenant), new_id=ids)
            run.updated_at = now
            changes.append(
                RunChange(run, [started, *plan.events], plan.jobs, plan.job_ids, create=True)
            )
        out = []
        for result in await self._commit(changes):
            assert result.run is not None  # a create is stored, or meets the key's run
            if result.applied:
                self._keep(result.run)
                if any(s.job.is_terminal for s in result.jobs):
                    self.mark(result.run.tenant, result.run.id)
            out.append((result.run.copy(), result.applied))
        return out

    # -- advancing ---------------------------------------------------------------------------

    def _lock(self, run_id: str) -> asyncio.Lock:
        lock = self._locks.get(run_id)
        if lock is None:
            lock = self._locks[run_id] = asyncio.Lock()
        return lock

    async def advance_many(self, items: Sequence[tuple[str, str]]) -> None:
        """Advance several runs together: one read of their running steps' jobs per tenant
        and one transaction storing every changed run with its new jobs; a run whose save
        lost its compare-and-swap is read again and advanced again."""
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
            if mine:
                advanced = await self._advance_locked(mine)
                for tenant, run_id in [*advanced.lost, *advanced.again]:
                    self._again[run_id] = tenant
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

    async def advance(self, tenant: str, run_id: str, *, stored: Run | None = None) -> Run | None:
        """Bring the run as far as stored state allows; return it as saved (None: no such
        run). ``stored``: the run as just read or written by the caller."""
        try:
            async with self._lock(run_id):
                if stored is not None and stored.tenant == tenant:
                    self._refresh_copy(stored.copy())
                for _ in range(SAVE_ATTEMPTS):
                    advanced = await self._advance_locked([(tenant, run_id)])
                    if advanced.lost or advanced.again:
                        continue
                    found = advanced.runs.get(run_id)
                    return None if found is None else found.copy()
                raise Conflict(f"run {run_id} is changing too fast; try again")
        finally:
            self._mark_again([run_id])

    async def _advance_locked(self, items: Sequence[tuple[str, str]]) -> _Advanced:
        """Plan every run of ``items`` (locked by the caller) and store the changed ones."""
        runs = await self._runs_for(items)
        try:
            return await self._plan_and_store(runs)
        except BaseException:
            for run in runs:  # planned in place but maybe not stored: read them again
                if self._runs.get(run.id) is run:
                    del self._runs[run.id]
            raise

    async def _plan_and_store(self, runs: Sequence[Run]) -> _Advanced:
        out = _Advanced({}, [], [])
        live = [r for r in runs if not r.state.is_terminal]
        jobs: dict[str, dict[str, StepJob]] = {}
        for tenant in {r.tenant for r in live}:
            jobs[tenant] = await self._load_jobs(tenant, (r for r in live if r.tenant == tenant))
        now = self.clock.now()
        to_spec = self._spec_maker(now)
        ids = _IdPool(len(live))
        work = []
        to_cancel: list[tuple[str, str]] = []
        for run in runs:
            if run.state.is_terminal:
                self._forget(run)
                out.runs[run.id] = run
                continue
            wf = await self._compiled(run.tenant, run.workflow, run.version)
            plan = plan_advance(
                run, wf, jobs[run.tenant], now, partial(to_spec, run.tenant), new_id=ids
            )
            to_cancel.extend((run.tenant, job_id) for job_id in plan.to_cancel)
            if plan.changed:
                run.updated_at = now
                work.append(RunChange(run, plan.events, plan.jobs, plan.job_ids))
            else:
                out.runs[run.id] = run
        await self._cancel_jobs(to_cancel)
        if not work:
            return out
        for change, result in zip(work, await self._commit(work), strict=True):
            run = change.run
            if result.applied and result.run is not None:
                self._keep(result.run)
                out.runs[run.id] = result.run
                if any(s.job.is_terminal for s in result.jobs):
                    out.again.append((run.tenant, run.id))
            else:
                self._runs.pop(run.id, None)
                out.lost.append((run.tenant, run.id))
        return out

    async def _runs_for(self, items: Sequence[tuple[str, str]]) -> list[Run]:
        """The runs of ``items``: the engine's copies, and one read per tenant of the others."""
        out: list[Run] = []
        missing: dict[str, list[str]] = {}
        for tenant, run_id in items:
            mine = self._runs.get(run_id)
            if mine is not None and mine.tenant == tenant:
                out.append(mine)
            else:
                missing.setdefault(tenant, []).append(run_id)
        for tenant, run_ids in missing.items():
            for stored in await self.store.get_runs(tenant, run_ids):
                self._keep(stored)
                out.append(self._runs.get(stored.id, stored))
        return out

    def _refresh_copy(self, run: Run) -> None:
        mine = self._runs.get(run.id)
        if mine is None or mine.revision < run.revision:
            self._keep(run)

    def _keep(self, run: Run) -> None:
        """Remember ``run`` as stored (or forget it when it is over), and which run each of
        its unfinished steps' jobs belongs to."""
        if run.state.is_terminal:
            self._forget(run)
            return
        if run.id in self._runs or len(self._runs) < MAX_CACHED_RUNS:
            self._runs[run.id] = run
        for step in run.steps:
            for job_id in step.jobs:
                if job_id is None:
                    continue
                if step.state.is_terminal:
                    self._job_runs.pop(job_id, None)
                else:
                    self._job_runs[job_id] = (run.tenant, run.id)

    def _forget(self, run: Run) -> None:
        self._runs.pop(run.id, None)
        for step in run.steps:
            for job_id in step.jobs:
                if job_id is not None:
                    self._job_runs.pop(job_id, None)
        lock = self._locks.get(run.id)
        if lock is not None and not lock.locked():
            del self._locks[run.id]

    async def _load_jobs(self, tenant: str, runs: Iterable[Run]) -> dict[str, StepJob]:
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
        return {job.id: job for job in await self.store.get_step_jobs(tenant, ids)}

    def _spec_maker(self, now: float) -> Callable[[str, StepDef, Any, str], JobSpec]:
        """``to_spec(tenant, step, payload, key)``: the orchestrator's validation of a step's
        job, made once per step for a whole batch (one snapshot of the kinds served and of the
        caller's trace); the step's other jobs differ only in payload (checked for the kind)
        and idempotency key."""
        orchestrator = self.orchestrator
        known = orchestrator.catalog.kinds()
        traceparent = orchestrator.observer.traceparent()
        made: dict[tuple[str, int], JobSpec] = {}

        def to_spec(tenant: str, step: StepDef, payload: Any, key: str) -> JobSpec:
            template = made.get((tenant, id(step)))
            if template is None or len(key) > MAX_NAME_LENGTH:
                spec = orchestrator.to_spec(tenant, _request(step, payload, key), now, known)
                if traceparent is not None:
                    spec = replace(spec, traceparent=traceparent)
                made[(tenant, id(step))] = spec
                return spec
            orchestrator.catalog.check(step.kind, payload, known)
            values = [getattr(template, name) for name in _SPEC_FIELDS]
            values[_PAYLOAD], values[_KEY] = payload, key
            return JobSpec(*values)

        return to_spec

    async def _cancel_jobs(self, jobs: Sequence[tuple[str, str]]) -> None:
        for tenant, job_id in jobs:
            with contextlib.suppress(Conflict, NotFound):
                await self.orchestrator.cancel(tenant, job_id)

    # -- storing -----------------------------------------------------------------------------

    async def _commit(self, changes: Sequence[RunChange]) -> list[AdvancedRun]:
        """Store ``changes`` with whatever other writers queue meanwhile (group commit)."""
        done: asyncio.Future[list[AdvancedRun]] = asyncio.get_running_loop().create_future()
        self._commits.add(_Pending(changes, done))
        return await done

    async def _write(self, pending: Sequence[_Pending]) -> None:
        """One transaction for a batch of run changes, then what they mean for this process:
        the new jobs are announced like any submit (events, metrics, idle claimers woken), and
        the runs' events are published."""
        now = self.clock.now()
        changes = [c for p in pending for c in p.changes]
        try:
            results = await self.store.advance_runs(AdvanceRunsParams(changes, now))
        except Exception as e:
            for p in pending:
                if not p.done.done():
                    p.done.set_exception(e)
            return
        created: list[Job] = []
        events: list[Event] = []
        for change, result in zip(changes, results, strict=True):
            if result.applied and result.run is not None:
                run = result.run
                for submitted in result.jobs:
                    if submitted.created:
                        created.append(submitted.job)
                    if not submitted.job.is_terminal:
                        self._job_runs[submitted.job.id] = (run.tenant, run.id)
                events.extend(bus_event(e) for e in change.events)
        start = 0
        for p in pending:
            end = start + len(p.changes)
            if not p.done.done():  # a caller that went away still has its changes stored
                p.done.set_result(results[start:end])
            start = end
        if created:
            orchestrator = self.orchestrator
            self.bus.publish([state_event(job, now) for job in created])
            orchestrator.observer.submitted(created)
            orchestrator.demand.note({job.kind for job in created})
            orchestrator.wake_claimers()
        if events:
            self.bus.publish(events)

    # -- cancel and retry --------------------------------------------------------------------

    async def _change(
        self,
        tenant: str,
        run_id: str,
        step: Callable[[Run], Awaitable[list[OutboxEvent]]],
    ) -> Run | None:
        """Read the run, apply ``step`` (which changes it and returns the events), store it
        with a compare-and-swap; read again and repeat when another writer won."""
        for _ in range(SAVE_ATTEMPTS):
            run = await self.store.get_run(tenant, run_id)
            if run is None:
                return None
            events = await step(run)
            run.updated_at = self.clock.now()
            [result] = await self._commit([RunChange(run, events)])
            if result.applied and result.run is not None:
                self._keep(result.run)
                return result.run.copy()
            self._runs.pop(run_id, None)
        raise Conflict(f"run {run_id} is changing too fast; try again")

    async def cancel(self, tenant: str, run_id: str) -> Run:
        async def cancel_once(run: Run) -> list[OutboxEvent]:
            if run.state.is_terminal:
                raise Conflict(f"run is {run.state.value}; only a running run can be cancelled")
            now = self.clock.now()
            jobs: list[tuple[str, str]] = []
            events: list[OutboxEvent] = []
            for step in run.steps:
                if step.state is StepState.RUNNING:
                    jobs.extend((run.tenant, j) for j in step.jobs if j is not None)
                if not step.state.is_terminal:
                    step.state, step.error, step.finished_at = (
                        StepState.CANCELLED,
                        "the run was cancelled",
                        now,
                    )
                    if step.started_at is None:
                        step.started_at = now
                    events.append(step_event(run, step, now))
            await self._cancel_jobs(jobs)
            run.state, run.finished_at, run.error = RunState.CANCELLED, now, "cancelled"
            return [*events, run_event(run, now)]

        async with self._lock(run_id):
            saved = await self._change(tenant, run_id, cancel_once)
        lock = self._locks.get(run_id)
        if lock is not None and not lock.locked() and run_id not in self._runs:
            del self._locks[run_id]  # the run is over
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
