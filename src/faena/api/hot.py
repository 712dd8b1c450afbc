"""The two calls clients make most — ``POST /v1/jobs`` and ``GET /v1/jobs/{id}`` — answered
without FastAPI's router and dependency solving, which cost more CPU than the work itself
(about a third of a status read, measured with py-spy under load; see bench/README.md).

It is a pure-ASGI layer just inside faena's own middlewares (request id, body limit, telemetry,
and whatever else wraps the app), so those see these requests as they see any other. It calls
the same code as the FastAPI routes (:meth:`Authenticator.authenticate`,
:func:`faena.api.routes.jobs.submit_one` / :func:`~faena.api.routes.jobs.read_job`); the
FastAPI routes with the same paths stay, documenting them in OpenAPI and serving every other
shape of these requests (a query string such as ``?wait=``).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from faena.api.auth import SCOPE_READ, SCOPE_WRITE, Authenticator
from faena.api.errors import handled_error
from faena.api.routes.jobs import read_job, submit_one
from faena.services.orchestrator import Orchestrator

JOBS = "/v1/jobs"
ONE_JOB = "/v1/jobs/"


@dataclass(frozen=True, slots=True)
class MatchedRoute:
    """What the router leaves in ``scope["route"]`` for the middlewares outside it (the
    telemetry middleware labels requests by ``path``, the route template)."""

    path: str
    methods: frozenset[str]


SUBMIT_ROUTE = MatchedRoute(JOBS, frozenset({"POST"}))
GET_ROUTE = MatchedRoute(ONE_JOB + "{job_id}", frozenset({"GET"}))


class HotRoutes:
    def __init__(self, app: ASGIApp, *, orchestrator: Orchestrator, auth: Authenticator) -> None:
        self.app = app
        self.orchestrator = orchestrator
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if method == "GET" and path.startswith(ONE_JOB) and not scope.get("query_string"):
                job_id = path[len(ONE_JOB) :]
                if job_id and "/" not in job_id:
                    await self._get(scope, receive, send, job_id)
                    return
            elif method == "POST" and path == JOBS:
                await self._submit(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _get(self, scope: Scope, receive: Receive, send: Send, job_id: str) -> None:
        scope["route"] = GET_ROUTE
        request = Request(scope, receive)
        try:
            principal = await self.auth.authenticate(request, SCOPE_READ)
            response = await read_job(self.orchestrator, principal, job_id)
        except Exception as exc:
            handled = await handled_error(request, exc)
            if handled is None:
                raise
            response = handled
        await response(scope, receive, send)

    async def _submit(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = SUBMIT_ROUTE
        request = Request(scope, receive)
        try:
            principal = await self.auth.authenticate(request, SCOPE_WRITE)
            response = await submit_one(self.orchestrator, request, principal)
        except Exception as exc:
            handled = await handled_error(request, exc)
            if handled is None:
                raise
            response = handled
        await response(scope, receive, send)
