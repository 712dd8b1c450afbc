"""``/v1/workflows`` and ``/v1/runs``: apply definitions (YAML or JSON), list them and their
versions, start runs, read, wait for, cancel and retry runs, pause and resume schedules."""

# No `from __future__ import annotations`: FastAPI reads these signatures at definition time.

from typing import Annotated, Any

import pydantic
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from faena.api.auth import Authenticator
from faena.api.body import (
    MAX_YAML_VALUES,
    NO_CONTENT_TYPE,
    check_limits,
    input_limits,
    is_json_media_type,
    read_json,
    validate,
)
from faena.api.errors import ApiError
from faena.api.responses import JsonResponse
from faena.api.routes.jobs import ERRORS
from faena.api.workflow_json import (
    child_to_json,
    run_to_json,
    schedule_to_json,
    version_to_json,
    workflow_to_json,
)
from faena.domain.auth import Principal
from faena.domain.errors import NotFound, ValidationError
from faena.domain.runs import Run, RunState
from faena.domain.workflows import load_yaml
from faena.ports.store import ListParams
from faena.ports.workflows import ListRunsParams
from faena.services.orchestrator import Orchestrator
from faena.services.workflows import RunRequest, WorkflowService

SCOPE_WORKFLOWS_WRITE = "workflows:write"
SCOPE_WORKFLOWS_READ = "workflows:read"
MAX_WAIT_S = 60.0
MAX_PAGE = 500
YAML_MEDIA_TYPES = (
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "text/x-yaml",
    "text/plain",
)


class RunIn(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    inputs: dict[str, Any] = pydantic.Field(default_factory=dict)
    version: int | None = pydantic.Field(default=None, ge=1)
    idempotency_key: str | None = pydantic.Field(default=None, min_length=1, max_length=200)


RUN_IN = pydantic.TypeAdapter(RunIn)
RUN_LIST_IN = pydantic.TypeAdapter(list[RunIn])


def parse_run_states(raw: str | None) -> frozenset[RunState] | None:
    if not raw:
        return None
    states = set()
    for name in raw.split(","):
        try:
            states.add(RunState(name.strip()))
        except ValueError:
            known = ", ".join(s.value for s in RunState)
            raise ValidationError(f"query.state: unknown state {name!r}; use {known}") from None
    return frozenset(states)


async def read_definition(request: Request) -> Any:
    """The workflow document of a PUT: JSON or YAML (with line marks) by its content type; a
    body without one is refused (415), never guessed."""
    content_type = request.headers.get("content-type")
    if content_type is None:
        raise ApiError(
            415,
            "unsupported_media_type",
            NO_CONTENT_TYPE.format(wanted="application/yaml or application/json"),
        )
    media = content_type.split(";", 1)[0].strip().lower()
    if is_json_media_type(content_type):
        return await read_json(request)
    if media not in YAML_MEDIA_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type {content_type!r} is not supported; send YAML or JSON",
        )
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_yaml", "request body is not UTF-8 text") from None
    if not text.strip():
        raise ApiError(400, "invalid_yaml", "request body is empty; send a workflow document")
    document = load_yaml(text)
    check_limits(document, input_limits(request.scope), max_values=MAX_YAML_VALUES)
    return document


SPAWNING_KINDS = frozenset({"agent", "agno"})  # kinds whose jobs submit child jobs (tool calls)
MAX_CHILDREN = 200  # child jobs shown per step job in a run


async def run_with_children(
    service: WorkflowService, jobs: Orchestrator | None, run: Run
) -> dict[str, Any]:
    """The run's JSON; each step of a spawning kind (an agent) also lists, as ``children``,
    the jobs its jobs spawned (``GET /v1/jobs?parent_id=`` for each of them)."""
    out = run_to_json(run)
    if jobs is None:
        return out
    try:
        definition = (await service.version(run.tenant, run.workflow, run.version)).definition
    except NotFound:
        return out
    kinds = {s.get("id"): s.get("kind") for s in definition.get("steps") or ()}
    for step, doc in zip(run.steps, out["steps"], strict=True):
        if kinds.get(step.id) not in SPAWNING_KINDS:
            continue
        children: list[dict[str, Any]] = []
        for job_id in step.jobs:
            if job_id is None:
                continue
            page = await jobs.list_jobs(
                ListParams(tenant=run.tenant, parent_id=job_id, limit=MAX_CHILDREN)
            )
            children.extend(child_to_json(j) for j in reversed(page.jobs))  # oldest first
        doc["children"] = children
    return out


def workflows_router(
    service: WorkflowService, auth: Authenticator, jobs: Orchestrator | None = None
) -> APIRouter:
    router = APIRouter(tags=["workflows"], responses=ERRORS)
    Reader = Annotated[Principal, Depends(auth.require(SCOPE_WORKFLOWS_READ))]
    Writer = Annotated[Principal, Depends(auth.require(SCOPE_WORKFLOWS_WRITE))]
    Wait = Annotated[
        float,
        Query(
            ge=0,
            le=MAX_WAIT_S,
            allow_inf_nan=False,
            description="seconds to wait for the run to finish",
        ),
    ]

    @router.put("/v1/workflows/{name}", summary="Apply a workflow (YAML or JSON): a new version")
    async def apply(name: str, request: Request, principal: Writer) -> Response:
        document = await read_definition(request)
        workflow = service.parse(document, name)
        result = await service.apply(principal.tenant, workflow, principal=principal)
        schedule = await service.store.get_schedule(principal.tenant, name)
        body = workflow_to_json(result.info, secrets=True, schedule=schedule)
        body["version"] = result.version.version
        body["created"] = result.created
        return JsonResponse(
            body,
            status_code=201 if result.created else 200,
            headers={"Location": f"/v1/workflows/{name}"},
        )

    @router.get("/v1/workflows", summary="List workflows")
    async def list_workflows(principal: Reader) -> Response:
        found = await service.list_workflows(principal.tenant)
        secrets = principal.has_scope(SCOPE_WORKFLOWS_WRITE)
        return JsonResponse({"workflows": [workflow_to_json(w, secrets=secrets) for w in found]})

    @router.get("/v1/workflows/{name}", summary="A workflow with its versions")
    async def get_workflow(name: str, principal: Reader) -> Response:
        info = await service.get(principal.tenant, name)
        versions = await service.versions(principal.tenant, name)
        schedule = await service.store.get_schedule(principal.tenant, name)
        body = workflow_to_json(
            info, secrets=principal.has_scope(SCOPE_WORKFLOWS_WRITE), schedule=schedule
        )
        body["definition"] = versions[0].definition
        body["versions"] = [
            {"version": v.version, "created_at": version_to_json(v)["created_at"]} for v in versions
        ]
        return JsonResponse(body)

    @router.get("/v1/workflows/{name}/versions/{version}", summary="One version of a workflow")
    async def get_version(name: str, version: int, principal: Reader) -> Response:
        return JsonResponse(version_to_json(await service.version(principal.tenant, name, version)))

    @router.post("/v1/workflows/{name}/runs", status_code=201, summary="Start a run")
    async def start_run(name: str, request: Request, principal: Writer, wait: Wait = 0) -> Response:
        data = await read_json(request) if (await request.body()).strip() else {}
        run_in = validate(RUN_IN, data)
        run, created = await service.start(
            principal.tenant,
            name,
            run_in.inputs,
            version=run_in.version,
            idempotency_key=run_in.idempotency_key,
            principal=principal,
        )
        if wait > 0:
            run = await service.wait_run(principal.tenant, run.id, wait)
        return JsonResponse(
            run_to_json(run),
            status_code=201 if created else 200,
            headers={"Location": f"/v1/runs/{run.id}"},
        )

    @router.post(
        "/v1/workflows/{name}/runs/batch",
        status_code=201,
        summary="Start many runs at once (one transaction)",
    )
    async def start_runs(name: str, request: Request, principal: Writer) -> Response:
        """A list of run requests (as for one run), or ``{"runs": [...]}``: every one is
        validated before any starts (a bad one names its index: ``run 3: ...``); the answer
        lists the runs in order, each with ``created`` (false: its idempotency key was used
        before, and that run is returned)."""
        data = await read_json(request)
        if isinstance(data, dict) and set(data) == {"runs"}:
            data = data["runs"]
        runs_in = validate(RUN_LIST_IN, data)
        started = await service.start_many(
            principal.tenant,
            name,
            [RunRequest(r.inputs, r.version, r.idempotency_key) for r in runs_in],
            principal=principal,
        )
        return JsonResponse(
            [{**run_to_json(run), "created": created} for run, created in started],
            status_code=201,
        )

    @router.post("/v1/workflows/{name}/pause", summary="Pause the workflow's schedule")
    async def pause(name: str, principal: Writer) -> Response:
        schedule = await service.pause(principal.tenant, name, paused=True)
        return JsonResponse(schedule_to_json(schedule))

    @router.post("/v1/workflows/{name}/resume", summary="Resume the workflow's schedule")
    async def resume(name: str, principal: Writer) -> Response:
        schedule = await service.pause(principal.tenant, name, paused=False)
        return JsonResponse(schedule_to_json(schedule))

    @router.get("/v1/runs", summary="List runs, newest first")
    async def list_runs(
        *,
        principal: Reader,
        workflow: Annotated[str | None, Query(max_length=200)] = None,
        state: Annotated[str | None, Query(description="comma-separated states")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Response:
        page = await service.list_runs(
            ListRunsParams(
                tenant=principal.tenant,
                workflow=workflow or None,
                states=parse_run_states(state),
                limit=limit,
                cursor=cursor or None,
            )
        )
        return JsonResponse(
            {"runs": [run_to_json(r) for r in page.runs], "next_cursor": page.next_cursor}
        )

    @router.get("/v1/runs/{run_id}", summary="A run with each step (optionally wait)")
    async def get_run(run_id: str, principal: Reader, wait: Wait = 0) -> Response:
        if wait > 0:
            run = await service.wait_run(principal.tenant, run_id, wait)
        else:
            run = await service.get_run(principal.tenant, run_id)
        return JsonResponse(await run_with_children(service, jobs, run))

    @router.post("/v1/runs/{run_id}/cancel", summary="Cancel a run and its running steps")
    async def cancel_run(run_id: str, principal: Writer) -> Response:
        return JsonResponse(run_to_json(await service.cancel_run(principal.tenant, run_id)))

    @router.post("/v1/runs/{run_id}/retry", summary="Re-run a run from its failed steps")
    async def retry_run(run_id: str, principal: Writer) -> Response:
        run = await service.retry_run(principal.tenant, run_id, principal=principal)
        return JsonResponse(run_to_json(run))

    return router
