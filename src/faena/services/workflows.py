"""Workflow use cases behind the API and CLI: apply definitions, start, read, wait for, cancel
and retry runs. The engine (:mod:`faena.services.workflow_engine`) moves runs forward."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from faena.domain.auth import Principal, require_jobs_allowed
from faena.domain.cron import check_cron, next_tick
from faena.domain.errors import NotFound, ValidationError
from faena.domain.events import Event
from faena.domain.ids import new_id
from faena.domain.runs import Run, RunState, Schedule, StepRun, WorkflowInfo, WorkflowVersion
from faena.domain.workflows import WorkflowDef, load_yaml, parse_workflow
from faena.ports.workflows import (
    GetVersionParams,
    ListRunsParams,
    PauseScheduleParams,
    PutWorkflowParams,
    PutWorkflowResult,
    RunPage,
)
from faena.services.workflow_engine import WorkflowEngine

WAIT_POLL_S = 1.0
MAX_IDEMPOTENCY_KEY = 200
MAX_RUN_BATCH = 1000


@dataclass(frozen=True, slots=True)
class RunRequest:
    """One run to start (:meth:`WorkflowService.start_many`); ``version`` None: the latest."""

    inputs: Mapping[str, Any] | None = None
    version: int | None = None
    idempotency_key: str | None = None
    trigger: str = "api"


class WorkflowService:
    def __init__(self, engine: WorkflowEngine) -> None:
        self.engine = engine
        self.store = engine.store
        self.clock = engine.clock

    # -- definitions -------------------------------------------------------------------------

    def parse(self, document: Any, name: str | None = None) -> WorkflowDef:
        """Validate a loaded document (``load_yaml``) against the kinds served here."""
        catalog = self.engine.orchestrator.catalog
        kinds = catalog.kinds() if catalog.strict else None
        return parse_workflow(document, name=name, known_kinds=kinds, check_cron=check_cron)

    async def apply_text(
        self, tenant: str, text: str, name: str | None = None
    ) -> PutWorkflowResult:
        return await self.apply(tenant, self.parse(load_yaml(text), name))

    async def apply(
        self, tenant: str, workflow: WorkflowDef, *, principal: Principal | None = None
    ) -> PutWorkflowResult:
        """Store ``workflow`` as a new version (or return the latest if identical). A caller's
        ``principal`` needs ``jobs:shell`` when a step runs code (``shell``, an ``agent`` with
        an MCP server command)."""
        if principal is not None:
            require_jobs_allowed(principal, ((s.kind, s.with_) for s in workflow.steps))
        now = self.clock.now()
        schedule = None
        if workflow.schedule is not None:
            spec = workflow.schedule
            schedule = Schedule(
                tenant=tenant,
                workflow=workflow.name,
                cron=spec.cron,
                timezone=spec.timezone,
                catch_up=spec.catch_up,
                next_fire_at=next_tick(spec.cron, spec.timezone, now),
            )
        result = await self.store.put_workflow(
            PutWorkflowParams(
                tenant=tenant,
                name=workflow.name,
                definition=workflow.to_dict(),
                now=now,
                hook_token="wh_" + secrets.token_urlsafe(24),
                hook_secret=secrets.token_urlsafe(32),
                schedule=schedule,
                has_triggers=bool(workflow.triggers),
            )
        )
        if result.created:  # webhooks have it from the outbox; live pages (the bus) from here
            data = {"workflow": workflow.name, "version": result.version.version}
            self.engine.bus.publish([Event("workflow.applied", tenant, data=data, ts=now)])
        return result

    async def get(self, tenant: str, name: str) -> WorkflowInfo:
        found = await self.store.get_workflow(tenant, name)
        if found is None:
            raise NotFound(f"no workflow {name!r}")
        return found

    async def version(self, tenant: str, name: str, version: int | None = None) -> WorkflowVersion:
        found = await self.store.get_workflow_version(GetVersionParams(tenant, name, version))
        if found is None:
            if version is None or await self.store.get_workflow(tenant, name) is None:
                raise NotFound(f"no workflow {name!r}")
            raise NotFound(f"workflow {name!r} has no version {version}")
        return found

    async def versions(self, tenant: str, name: str) -> list[WorkflowVersion]:
        found = await self.store.list_workflow_versions(tenant, name)
        if not found:
            raise NotFound(f"no workflow {name!r}")
        return found

    async def list_workflows(self, tenant: str) -> list[WorkflowInfo]:
        return await self.store.list_workflows(tenant)

    # -- runs --------------------------------------------------------------------------------

    async def start(
        self,
        tenant: str,
        name: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        trigger: str = "api",
        idempotency_key: str | None = None,
        advance_now: bool = True,
        principal: Principal | None = None,
    ) -> tuple[Run, bool]:
        """Start a run of ``name`` (its latest version unless ``version``); with an
        idempotency key already used, return that run and False. The run is stored with the
        jobs of its first steps in one transaction (``advance_now`` is kept for callers: it
        no longer makes a difference, the first steps are always submitted at once)."""
        del advance_now
        request = RunRequest(inputs, version, idempotency_key, trigger)
        [started] = await self.start_many(tenant, name, [request], principal=principal)
        return started

    async def start_many(
        self,
        tenant: str,
        name: str,
        requests: Sequence[RunRequest],
        *,
        principal: Principal | None = None,
    ) -> list[tuple[Run, bool]]:
        """Start runs of ``name``, all validated before any is stored, then stored together
        with their first steps' jobs (one transaction); per request, as :meth:`start`."""
        if not requests:
            raise ValidationError("start at least one run")
        if len(requests) > MAX_RUN_BATCH:
            raise ValidationError(f"a batch starts at most {MAX_RUN_BATCH} runs")
        latest: int | None = None
        runs = []
        now = self.clock.now()
        for i, request in enumerate(requests):
            try:
                key = _checked_key(request.idempotency_key)
                version = request.version
                if version is None:
                    if latest is None:
                        latest = (await self.version(tenant, name)).version
                    version = latest
                workflow = await self._definition(tenant, name, version)
                if principal is not None:  # checked at run time too: the key may differ
                    require_jobs_allowed(principal, ((s.kind, s.with_) for s in workflow.steps))
                resolved = workflow.resolve_inputs(request.inputs)
            except ValidationError as e:
                if len(requests) == 1:
                    raise
                raise ValidationError(f"run {i}: {e.message}") from None
            runs.append(
                Run(
                    id=new_id(),
                    tenant=tenant,
                    workflow=name,
                    version=version,
                    state=RunState.RUNNING,
                    inputs=resolved,
                    steps=[StepRun(id=s.id) for s in workflow.steps],
                    created_at=now,
                    updated_at=now,
                    trigger=request.trigger,
                    idempotency_key=key,
                )
            )
        return await self.engine.create_runs(runs)

    async def _definition(self, tenant: str, name: str, version: int) -> WorkflowDef:
        try:
            return await self.engine.definition(tenant, name, version)
        except NotFound:
            await self.version(tenant, name, version)  # the precise message
            raise

    async def get_run(self, tenant: str, run_id: str) -> Run:
        found = await self.store.get_run(tenant, run_id)
        if found is None:
            raise NotFound(f"no run {run_id!r}")
        return found

    async def list_runs(self, params: ListRunsParams) -> RunPage:
        return await self.store.list_runs(params)

    async def wait_run(self, tenant: str, run_id: str, timeout_s: float) -> Run:
        """The run once terminal, or as it is after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        with closing(self.engine.bus.subscribe(tenant=tenant)) as sub:
            run = await self.get_run(tenant, run_id)
            while not run.state.is_terminal:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    async with asyncio.timeout(min(left, WAIT_POLL_S)):
                        while True:
                            event = await sub.get()
                            if event.type == "run.state" and event.data.get("run_id") == run_id:
                                break
                except TimeoutError:
                    pass
                run = await self.get_run(tenant, run_id)
            return run

    async def cancel_run(self, tenant: str, run_id: str) -> Run:
        return await self.engine.cancel(tenant, run_id)

    async def retry_run(
        self, tenant: str, run_id: str, *, principal: Principal | None = None
    ) -> Run:
        if principal is not None:
            run = await self.get_run(tenant, run_id)
            workflow = await self.engine.definition(tenant, run.workflow, run.version)
            require_jobs_allowed(principal, ((s.kind, s.with_) for s in workflow.steps))
        return await self.engine.retry(tenant, run_id)

    async def pause(self, tenant: str, name: str, *, paused: bool) -> Schedule:
        """Pause or resume the workflow's schedule; resuming skips the ticks missed meanwhile."""
        await self.get(tenant, name)
        next_fire_at = None
        if not paused:
            found = await self.store.get_schedule(tenant, name)
            if found is not None:
                next_fire_at = next_tick(found.cron, found.timezone, self.clock.now())
        return await self.store.pause_schedule(
            PauseScheduleParams(tenant, name, paused=paused, next_fire_at=next_fire_at)
        )


def _checked_key(key: str | None) -> str | None:
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ValidationError(f"idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    return key
