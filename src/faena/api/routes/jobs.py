"""``/v1/jobs``: submit, batch submit, list, get (with long-poll), cancel, retry, logs."""

# No `from __future__ import annotations`: FastAPI reads these signatures at definition time,
# and their dependencies (`Reader`, `Writer`, `Admin`) are local to the router factory.

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.responses import Response, StreamingResponse

from faena.api.auth import SCOPE_READ, SCOPE_WRITE, Authenticator
from faena.api.body import read_json, validate
from faena.api.responses import JsonResponse
from faena.api.schemas import (
    BATCH_IN,
    JOB_IN,
    JOB_LIST_IN,
    ErrorOut,
    JobOut,
    JobPageOut,
    LogPageOut,
    body_schema,
    chunk_to_json,
    job_to_json,
)
from faena.api.sse import follow_events
from faena.domain.auth import Principal
from faena.domain.errors import ValidationError
from faena.domain.jobs import JobState
from faena.ports.store import ListParams
from faena.services.orchestrator import LOG_PAGE, Orchestrator

MAX_WAIT_S = 60.0
MAX_PAGE = 500
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (400, 401, 403, 404, 409, 413, 415, 422, 503)
}


def parse_states(raw: str | None) -> frozenset[JobState] | None:
    if not raw:
        return None
    states = set()
    for name in raw.split(","):
        try:
            states.add(JobState(name.strip()))
        except ValueError:
            known = ", ".join(s.value for s in JobState)
            raise ValidationError(f"query.state: unknown state {name!r}; use {known}") from None
    return frozenset(states)


def parse_labels(raw: list[str] | None) -> dict[str, str] | None:
    """``label=team=ops&label=env=prod`` → ``{"team": "ops", "env": "prod"}``."""
    if not raw:
        return None
    labels = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValidationError(f"query.label: {item!r} is not KEY=VALUE")
        labels[key.strip()] = value.strip()
    return labels


def parse_time(name: str, raw: str | None) -> float | None:
    """An ISO 8601 time (``2026-01-31T12:00:00Z``; no zone means UTC) or epoch seconds."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"query.{name}: {raw!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def parse_last_event_id(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        cursor = int(value)
    except ValueError:
        raise ValidationError("Last-Event-ID must be a log cursor (an integer)") from None
    if cursor < 0:
        raise ValidationError("Last-Event-ID must be >= 0")
    return cursor


async def submit_one(
    orchestrator: Orchestrator, request: Request, principal: Principal
) -> Response:
    """``POST /v1/jobs`` (also served by :mod:`faena.api.hot`)."""
    job_in = validate(JOB_IN, await read_json(request))
    [submitted] = await orchestrator.submit(
        principal.tenant, [job_in.to_request()], principal=principal
    )
    job = submitted.job
    return JsonResponse(
        job_to_json(job),
        status_code=201 if submitted.created else 200,
        headers={"Location": f"/v1/jobs/{job.id}"},
    )


async def read_job(
    orchestrator: Orchestrator, principal: Principal, job_id: str, wait: float = 0
) -> Response:
    """``GET /v1/jobs/{id}`` (also served by :mod:`faena.api.hot` when there is no query)."""
    if wait > 0:
        job = await orchestrator.wait(principal.tenant, job_id, wait)
    else:
        job = await orchestrator.get(principal.tenant, job_id)
    body = job_to_json(job)
    why = await orchestrator.explain_placement(job)
    if why is not None:
        body["placement"] = why  # why a queued job is not running yet (issue 4)
    progress = None if orchestrator.progress is None else orchestrator.progress.of(job)
    if progress is not None:
        body["progress"] = progress  # what the running attempt last reported
    return JsonResponse(body)


def jobs_router(
    orchestrator: Orchestrator, auth: Authenticator, *, sse_keepalive_s: float
) -> APIRouter:
    router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=ERRORS)
    Reader = Annotated[Principal, Depends(auth.require(SCOPE_READ))]
    Writer = Annotated[Principal, Depends(auth.require(SCOPE_WRITE))]

    @router.post(
        "",
        status_code=201,
        response_model=JobOut,
        summary="Submit a job",
        openapi_extra=body_schema(JOB_IN),
        responses={200: {"model": JobOut, "description": "idempotency key seen: the first job"}},
    )
    async def submit(request: Request, principal: Writer) -> Response:
        return await submit_one(orchestrator, request, principal)

    @router.post(
        "/batch",
        status_code=201,
        response_model=list[JobOut],
        summary="Submit many jobs at once",
        openapi_extra=body_schema(JOB_LIST_IN),
    )
    async def submit_batch(request: Request, principal: Writer) -> Response:
        data = await read_json(request)
        jobs_in = validate(BATCH_IN, data).jobs if isinstance(data, dict) else None
        if jobs_in is None:
            jobs_in = validate(JOB_LIST_IN, data)
        submitted = await orchestrator.submit(
            principal.tenant, [job_in.to_request() for job_in in jobs_in], principal=principal
        )
        return JsonResponse([job_to_json(s.job) for s in submitted], status_code=201)

    @router.get("", response_model=JobPageOut, summary="List jobs, newest first")
    async def list_jobs(
        *,
        principal: Reader,
        state: Annotated[str | None, Query(description="comma-separated states")] = None,
        queue: Annotated[str | None, Query(max_length=200)] = None,
        kind: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
        label: Annotated[
            list[str] | None, Query(max_length=300, description="KEY=VALUE; repeatable: all")
        ] = None,
        created_after: Annotated[
            str | None, Query(max_length=40, description="ISO 8601 time or epoch seconds")
        ] = None,
        created_before: Annotated[
            str | None, Query(max_length=40, description="ISO 8601 time or epoch seconds")
        ] = None,
        parent_id: Annotated[
            str | None,
            Query(max_length=200, description="the children of this job (an agent's tool calls)"),
        ] = None,
    ) -> Response:
        page = await orchestrator.list_jobs(
            ListParams(
                tenant=principal.tenant,
                states=parse_states(state),
                queue=queue or None,
                kind=kind or None,
                limit=limit,
                cursor=cursor or None,
                labels=parse_labels(label),
                created_after=parse_time("created_after", created_after),
                created_before=parse_time("created_before", created_before),
                parent_id=parent_id or None,
            )
        )
        return JsonResponse(
            {"jobs": [job_to_json(j) for j in page.jobs], "next_cursor": page.next_cursor}
        )

    @router.get("/{job_id}", response_model=JobOut, summary="Get a job (optionally wait)")
    async def get_job(
        job_id: str,
        principal: Reader,
        wait: Annotated[
            float,
            Query(
                ge=0,
                le=MAX_WAIT_S,
                allow_inf_nan=False,
                description="seconds to wait for "
                "the job to finish before answering with its current state",
            ),
        ] = 0,
    ) -> Response:
        return await read_job(orchestrator, principal, job_id, wait)

    @router.post("/{job_id}/cancel", response_model=JobOut, summary="Cancel a job")
    async def cancel(job_id: str, principal: Writer) -> Response:
        return JsonResponse(job_to_json(await orchestrator.cancel(principal.tenant, job_id)))

    @router.post("/{job_id}/retry", response_model=JobOut, summary="Retry a failed job")
    async def retry(job_id: str, principal: Writer) -> Response:
        job = await orchestrator.retry(principal.tenant, job_id, principal=principal)
        return JsonResponse(job_to_json(job))

    @router.get(
        "/{job_id}/logs",
        response_model=LogPageOut,
        summary="Read a job's output (or follow it as Server-Sent Events)",
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def logs(
        *,
        job_id: str,
        principal: Reader,
        after: Annotated[int, Query(ge=0, le=2**62)] = 0,
        limit: Annotated[int, Query(ge=1, le=LOG_PAGE)] = LOG_PAGE,
        follow: bool = False,
        last_event_id: Annotated[str | None, Header(max_length=40)] = None,
    ) -> Response:
        if follow:
            resume = parse_last_event_id(last_event_id)
            await orchestrator.get(principal.tenant, job_id)  # 404 before the stream starts
            events = follow_events(
                orchestrator,
                principal.tenant,
                job_id,
                after if resume is None else resume,
                sse_keepalive_s,
            )
            return StreamingResponse(
                events,
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        chunks = await orchestrator.read_logs(principal.tenant, job_id, after, limit)
        return JsonResponse(
            {
                "chunks": [chunk_to_json(c) for c in chunks],
                "next_cursor": chunks[-1].cursor if chunks else after,
            }
        )

    return router
