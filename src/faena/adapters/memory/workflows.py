"""The WorkflowStore operations of the in-memory store (mixed into ``MemoryStore``).

Like the job tables, everything is kept encoded (runs and definitions as JSON), so callers can
never change stored state through objects they passed in or got back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import orjson

from faena.adapters.workflow_rows import patch_job_ids
from faena.domain.errors import Conflict, NotFound
from faena.domain.ids import new_id
from faena.domain.jobs import Job
from faena.domain.runs import (
    Delivery,
    DeliveryState,
    OutboxEvent,
    Run,
    RunState,
    Schedule,
    Subscription,
    WorkflowInfo,
    WorkflowVersion,
    event_body,
    wanted_events,
)
from faena.ports.store import SubmitParams, Submitted
from faena.ports.workflows import (
    ActiveRunsParams,
    AdvancedRun,
    AdvanceRunsParams,
    AdvanceScheduleParams,
    ClaimDeliveriesParams,
    CreatedRun,
    CreateRunParams,
    DeliveryBacklog,
    DispatchOutboxParams,
    DueSchedulesParams,
    GetVersionParams,
    ListDeliveriesParams,
    ListRunsParams,
    PauseScheduleParams,
    PutWorkflowParams,
    PutWorkflowResult,
    RecordDeliveryParams,
    RunPage,
    SaveRunParams,
    StepJob,
)


def _copy(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


@dataclass
class _State:
    workflows: dict[tuple[str, str], WorkflowInfo] = field(default_factory=dict)
    triggered: set[tuple[str, str]] = field(default_factory=set)
    versions: dict[tuple[str, str], list[WorkflowVersion]] = field(default_factory=dict)
    hooks: dict[str, tuple[str, str]] = field(default_factory=dict)
    runs: dict[str, bytes] = field(default_factory=dict)  # id -> encoded run
    run_keys: dict[tuple[str, str], str] = field(default_factory=dict)
    schedules: dict[tuple[str, str], Schedule] = field(default_factory=dict)
    outbox: list[OutboxEvent] = field(default_factory=list)
    dispatched: int = 0  # outbox events [0, dispatched) are dispatched
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    deliveries: dict[str, Delivery] = field(default_factory=dict)


def _encode(run: Run) -> bytes:
    return orjson.dumps(
        {
            "id": run.id,
            "tenant": run.tenant,
            "workflow": run.workflow,
            "version": run.version,
            "state": run.state.value,
            "doc": run.to_doc(),
            "created_at": run.created_at,
            "updated_at": run.updated_at,
            "finished_at": run.finished_at,
            "idempotency_key": run.idempotency_key,
            "revision": run.revision,
        }
    )


def _decode(raw: bytes) -> Run:
    return Run.from_columns(**orjson.loads(raw))


class MemoryWorkflows:
    """Workflows, runs, schedules, outbox and deliveries in dicts."""

    # No hook in the job methods: the webhooks service copies job.state events from the bus.
    job_events_in_outbox = False

    __wf: _State | None = None

    if TYPE_CHECKING:

        async def submit_many(self, params: SubmitParams) -> list[Submitted]: ...

        async def get_many(self, tenant: str, job_ids: Sequence[str]) -> list[Job]: ...

    @property
    def _wf(self) -> _State:
        if self.__wf is None:
            self.__wf = _State()
        return self.__wf

    # -- workflows ---------------------------------------------------------------------------

    async def put_workflow(self, params: PutWorkflowParams) -> PutWorkflowResult:
        wf, key = self._wf, (params.tenant, params.name)
        definition = _copy(params.definition)
        info = wf.workflows.get(key)
        versions = wf.versions.setdefault(key, [])
        if info is not None and versions and versions[-1].definition == definition:
            return PutWorkflowResult(info, versions[-1], created=False)
        number = len(versions) + 1
        version = WorkflowVersion(params.tenant, params.name, number, definition, params.now)
        versions.append(version)
        if info is None:
            info = WorkflowInfo(
                tenant=params.tenant,
                name=params.name,
                latest_version=number,
                hook_token=params.hook_token,
                hook_secret=params.hook_secret,
                created_at=params.now,
                updated_at=params.now,
            )
            wf.hooks[params.hook_token] = key
        else:
            info = replace(info, latest_version=number, updated_at=params.now)
        wf.workflows[key] = info
        if params.has_triggers:
            wf.triggered.add(key)
        else:
            wf.triggered.discard(key)
        old = wf.schedules.get(key)
        if params.schedule is None:
            wf.schedules.pop(key, None)
        elif old is None or (old.cron, old.timezone) != (
            params.schedule.cron,
            params.schedule.timezone,
        ):
            wf.schedules[key] = replace(params.schedule, paused=old.paused if old else False)
        else:
            wf.schedules[key] = replace(old, catch_up=params.schedule.catch_up)
        self._append(
            [
                OutboxEvent(
                    "workflow.applied",
                    params.tenant,
                    {"workflow": params.name, "version": number},
                    params.now,
                )
            ]
        )
        return PutWorkflowResult(info, version, created=True)

    async def get_workflow(self, tenant: str, name: str) -> WorkflowInfo | None:
        info = self._wf.workflows.get((tenant, name))
        schedule = self._wf.schedules.get((tenant, name))
        if info is not None and schedule is not None:
            info = replace(info, paused=schedule.paused)
        return info

    async def get_workflow_version(self, params: GetVersionParams) -> WorkflowVersion | None:
        versions = self._wf.versions.get((params.tenant, params.name)) or []
        if not versions:
            return None
        number = params.version if params.version is not None else len(versions)
        if not 1 <= number <= len(versions):
            return None
        found = versions[number - 1]
        return replace(found, definition=_copy(found.definition))

    async def list_workflows(self, tenant: str) -> list[WorkflowInfo]:
        names = sorted(name for t, name in self._wf.workflows if t == tenant)
        return [w for n in names if (w := await self.get_workflow(tenant, n)) is not None]

    async def list_workflow_versions(self, tenant: str, name: str) -> list[WorkflowVersion]:
        versions = self._wf.versions.get((tenant, name)) or []
        return [replace(v, definition=_copy(v.definition)) for v in reversed(versions)]

    async def find_hook(self, token: str) -> WorkflowInfo | None:
        key = self._wf.hooks.get(token)
        return None if key is None else self._wf.workflows.get(key)

    async def list_triggered_workflows(self) -> list[WorkflowVersion]:
        out = []
        for tenant, name in sorted(self._wf.triggered):
            found = await self.get_workflow_version(GetVersionParams(tenant, name))
            if found is not None:
                out.append(found)
        return out

    # -- runs --------------------------------------------------------------------------------

    async def create_run(self, params: CreateRunParams) -> CreatedRun:
        wf, run = self._wf, params.run
        if run.idempotency_key is not None:
            existing = wf.run_keys.get((run.tenant, run.idempotency_key))
            if existing is not None:
                return CreatedRun(_decode(wf.runs[existing]), created=False)
            wf.run_keys[(run.tenant, run.idempotency_key)] = run.id
        if run.id in wf.runs:
            raise Conflict(f"run {run.id} already exists")
        wf.runs[run.id] = _encode(run)
        self._append(params.events)
        return CreatedRun(_decode(wf.runs[run.id]), created=True)

    async def get_run(self, tenant: str, run_id: str) -> Run | None:
        raw = self._wf.runs.get(run_id)
        if raw is None:
            return None
        run = _decode(raw)
        return run if run.tenant == tenant else None

    async def get_runs(self, tenant: str, run_ids: Sequence[str]) -> list[Run]:
        found = (self._wf.runs.get(run_id) for run_id in run_ids)
        runs = (_decode(raw) for raw in found if raw is not None)
        return [run for run in runs if run.tenant == tenant]

    async def get_step_jobs(self, tenant: str, job_ids: Sequence[str]) -> list[StepJob]:
        return [
            StepJob(j.id, j.state, j.attempts, j.result, j.error)
            for j in await self.get_many(tenant, job_ids)
        ]

    async def list_runs(self, params: ListRunsParams) -> RunPage:
        out: list[Run] = []
        for run_id in sorted(self._wf.runs, reverse=True):
            if params.cursor is not None and run_id >= params.cursor:
                continue
            run = _decode(self._wf.runs[run_id])
            if run.tenant != params.tenant:
                continue
            if params.workflow is not None and run.workflow != params.workflow:
                continue
            if params.states is not None and run.state not in params.states:
                continue
            out.append(run)
            if len(out) > params.limit:
                break
        more = len(out) > params.limit
        out = out[: params.limit]
        return RunPage(out, out[-1].id if more and out else None)

    async def list_active_runs(self, params: ActiveRunsParams) -> list[Run]:
        out = []
        for run_id in sorted(self._wf.runs):
            if params.after is not None and run_id <= params.after:
                continue
            run = _decode(self._wf.runs[run_id])
            if run.state is RunState.RUNNING:
                out.append(run)
                if len(out) >= params.limit:
                    break
        return out

    async def save_run(self, params: SaveRunParams) -> Run | None:
        raw = self._wf.runs.get(params.run.id)
        if raw is None:
            raise NotFound(f"no run {params.run.id!r}")
        if _decode(raw).revision != params.run.revision:
            return None
        saved = replace(params.run, revision=params.run.revision + 1)
        self._wf.runs[saved.id] = _encode(saved)
        self._append(params.events)
        return _decode(self._wf.runs[saved.id])

    async def save_runs(self, params: Sequence[SaveRunParams]) -> list[Run | None]:
        return [await self.save_run(p) for p in params]

    async def advance_runs(self, params: AdvanceRunsParams) -> list[AdvancedRun]:
        # No await yields to another task before the last change is applied: one transaction.
        wf, out = self._wf, []
        for change in params.changes:
            run = change.run
            key = None if run.idempotency_key is None else (run.tenant, run.idempotency_key)
            if change.create:
                if key is not None and key in wf.run_keys:
                    out.append(AdvancedRun(_decode(wf.runs[wf.run_keys[key]]), applied=False))
                    continue
                if run.id in wf.runs:
                    raise Conflict(f"run {run.id} already exists")
                stored = run
            else:
                raw = wf.runs.get(run.id)
                if raw is None or _decode(raw).revision != run.revision:
                    out.append(AdvancedRun(None, applied=False))
                    continue
                stored = replace(run, revision=run.revision + 1)
            jobs: list[Submitted] = []
            if change.jobs:
                jobs = await self.submit_many(
                    SubmitParams(specs=change.jobs, ids=change.job_ids, now=params.now)
                )
                earlier = {
                    planned: s.job.id
                    for planned, s in zip(change.job_ids, jobs, strict=True)
                    if s.job.id != planned
                }
                if earlier:
                    stored = patch_job_ids(stored, earlier)
            if change.create and key is not None:
                wf.run_keys[key] = run.id
            wf.runs[run.id] = _encode(stored)
            self._append(change.events)
            out.append(AdvancedRun(_decode(wf.runs[run.id]), applied=True, jobs=jobs))
        return out

    # -- schedules ---------------------------------------------------------------------------

    async def get_schedule(self, tenant: str, workflow: str) -> Schedule | None:
        return self._wf.schedules.get((tenant, workflow))

    async def due_schedules(self, params: DueSchedulesParams) -> list[Schedule]:
        due = [
            s for s in self._wf.schedules.values() if not s.paused and s.next_fire_at <= params.now
        ]
        due.sort(key=lambda s: s.next_fire_at)
        return due[: params.limit]

    async def advance_schedule(self, params: AdvanceScheduleParams) -> bool:
        key = (params.tenant, params.workflow)
        found = self._wf.schedules.get(key)
        if found is None or found.next_fire_at != params.expected:
            return False
        self._wf.schedules[key] = replace(found, next_fire_at=params.next_fire_at)
        return True

    async def pause_schedule(self, params: PauseScheduleParams) -> Schedule:
        key = (params.tenant, params.workflow)
        found = self._wf.schedules.get(key)
        if found is None:
            raise NotFound(f"workflow {params.workflow!r} has no schedule")
        changed = replace(found, paused=params.paused)
        if params.next_fire_at is not None:
            changed = replace(changed, next_fire_at=params.next_fire_at)
        self._wf.schedules[key] = changed
        return changed

    # -- outbox and deliveries ---------------------------------------------------------------

    def _append(self, events: Sequence[OutboxEvent]) -> None:
        """Keep the events a subscription of their tenant wants (the relay's only input)."""
        patterns: dict[str, list[str]] = {}
        for sub in self._wf.subscriptions.values():
            patterns.setdefault(sub.tenant, []).extend(sub.events)
        for event in wanted_events(events, patterns):
            self._wf.outbox.append(
                replace(event, id=len(self._wf.outbox) + 1, data=_copy(event.data))
            )

    async def append_events(self, events: Sequence[OutboxEvent]) -> None:
        self._append(events)

    async def create_subscription(self, subscription: Subscription) -> None:
        self._wf.subscriptions[subscription.id] = subscription

    async def list_subscriptions(self, tenant: str) -> list[Subscription]:
        subs = self._wf.subscriptions.values()
        return sorted((s for s in subs if s.tenant == tenant), key=lambda s: s.id)

    async def delete_subscription(self, tenant: str, subscription_id: str) -> None:
        found = self._wf.subscriptions.get(subscription_id)
        if found is None or found.tenant != tenant:
            raise NotFound(f"no subscription {subscription_id!r}")
        del self._wf.subscriptions[subscription_id]

    async def dispatch_outbox(self, params: DispatchOutboxParams) -> int:
        wf = self._wf
        batch = wf.outbox[wf.dispatched : wf.dispatched + params.limit]
        for event in batch:
            for sub in wf.subscriptions.values():
                if sub.tenant == event.tenant and sub.matches(event.type):
                    delivery_id = new_id()
                    wf.deliveries[delivery_id] = Delivery(
                        id=delivery_id,
                        tenant=event.tenant,
                        subscription_id=sub.id,
                        event_id=event.id,
                        event_type=event.type,
                        body=event_body(event),
                        state=DeliveryState.PENDING,
                        attempts=0,
                        next_attempt_at=params.now,
                        created_at=params.now,
                    )
        wf.dispatched += len(batch)
        return len(batch)

    async def claim_deliveries(self, params: ClaimDeliveriesParams) -> list[Delivery]:
        due = sorted(
            (
                d
                for d in self._wf.deliveries.values()
                if d.state is DeliveryState.PENDING and d.next_attempt_at <= params.now
            ),
            key=lambda d: (d.next_attempt_at, d.id),
        )[: params.limit]
        for d in due:
            self._wf.deliveries[d.id] = replace(d, next_attempt_at=params.now + params.lease_s)
        return due

    async def record_delivery(self, params: RecordDeliveryParams) -> bool:
        found = self._wf.deliveries.get(params.delivery_id)
        if found is None or found.state is not DeliveryState.PENDING:
            return False
        if found.attempts != params.attempts:
            return False
        self._wf.deliveries[found.id] = replace(
            found,
            state=params.state,
            attempts=found.attempts + 1,
            next_attempt_at=params.next_attempt_at,
            last_status=params.status,
            last_error=params.error,
            delivered_at=params.now if params.state is DeliveryState.DELIVERED else None,
        )
        return True

    async def delivery_backlog(self) -> DeliveryBacklog:
        wf = self._wf
        pending = sum(d.state is DeliveryState.PENDING for d in wf.deliveries.values())
        return DeliveryBacklog(outbox=len(wf.outbox) - wf.dispatched, pending=pending)

    async def list_deliveries(self, params: ListDeliveriesParams) -> list[Delivery]:
        found = [
            d
            for d in self._wf.deliveries.values()
            if d.tenant == params.tenant and (params.state is None or d.state is params.state)
        ]
        found.sort(key=lambda d: d.id, reverse=True)
        return found[: params.limit]

    async def redrive_delivery(self, tenant: str, delivery_id: str, now: float) -> Delivery:
        found = self._wf.deliveries.get(delivery_id)
        if found is None or found.tenant != tenant:
            raise NotFound(f"no delivery {delivery_id!r}")
        if found.state is not DeliveryState.DEAD:
            raise Conflict(f"delivery is {found.state.value}; only dead deliveries are redriven")
        changed = replace(
            found, state=DeliveryState.PENDING, attempts=0, next_attempt_at=now, last_error=None
        )
        self._wf.deliveries[delivery_id] = changed
        return changed
