"""``faena mcp``: faena as an MCP server, so AI assistants can submit jobs, start workflows and
read results and logs. Every tool is a call on faena's HTTP API with the API key it was given
(``FAENA_API_KEY``), so that key's tenant and scopes bound what an assistant can do.

Built with the official ``mcp`` SDK (``MCPServer``); served over stdio (the default: an
assistant starts ``faena mcp`` itself) or streamable HTTP (``--http PORT``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from faena.client import AsyncClient
from faena.client_models import WaitTimeout
from faena.client_workflows import RunWaitTimeout
from faena.domain.errors import FaenaError

P = ParamSpec("P")
T = TypeVar("T")

MAX_WAIT_S = 60.0
MAX_LIST = 200
INSTRUCTIONS = (
    "faena runs durable jobs and workflows. Submit a job with submit_job (a kind such as "
    "'http' or a registered task, and its JSON payload), follow it with get_job and job_logs; "
    "start a workflow with run_workflow and follow it with get_run."
)


def to_json(value: Any) -> Any:
    """A client model (Job, Run, LogChunk) as plain JSON: datetimes as ISO 8601."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def _wait(seconds: float) -> float:
    return max(0.0, min(float(seconds), MAX_WAIT_S))


F = TypeVar("F", bound=Callable[..., Any])


def _tool(server: Any) -> Callable[[F], F]:
    """``server.tool()``, typed: the SDK registers the function and returns it."""
    decorator: Callable[[F], F] = server.tool()
    return decorator


def _reported(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """faena's errors reach the assistant as tool errors with their code and message (the
    SDK hides the text of any other exception)."""
    from mcp.server.mcpserver.exceptions import ToolError

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except FaenaError as e:
            raise ToolError(f"{e.code}: {e.message}") from None

    return call


async def _job(client: AsyncClient, job_id: str, wait_s: float) -> Any:
    """The job, once finished if ``wait_s`` > 0 (as it is when that runs out)."""
    if wait_s <= 0:
        return await client.get(job_id)
    try:
        return await client.wait(job_id, _wait(wait_s))
    except WaitTimeout:
        return await client.get(job_id)


def build_server(client: Callable[[], AsyncClient]) -> Any:
    """The MCP server; ``client`` gives the faena client the tools call (one per process)."""
    from mcp.server.mcpserver import MCPServer

    server: Any = MCPServer("faena", instructions=INSTRUCTIONS)

    @_tool(server)
    @_reported
    async def submit_job(  # noqa: PLR0917 - the tool's arguments, as the assistant sees them
        kind: str,
        payload: Any = None,
        queue: str | None = None,
        priority: int = 0,
        idempotency_key: str | None = None,
        wait_s: float = 0,
    ) -> dict[str, Any]:
        """Submit a job of `kind` with its JSON `payload`; with `wait_s` > 0, wait up to that
        many seconds (at most 60) for it to finish. Returns the job."""
        handle = await client().submit(
            kind, payload, queue=queue, priority=priority, idempotency_key=idempotency_key
        )
        job = await _job(client(), handle.job.id, wait_s) if wait_s > 0 else handle.job
        result: dict[str, Any] = to_json(job)
        return result

    @_tool(server)
    @_reported
    async def get_job(job_id: str, wait_s: float = 0) -> dict[str, Any]:
        """A job by id: state, result, error, attempts; with `wait_s` > 0, once finished (or
        after that many seconds, at most 60)."""
        job = await _job(client(), job_id, wait_s)
        result: dict[str, Any] = to_json(job)
        return result

    @_tool(server)
    @_reported
    async def job_logs(job_id: str, after: int = 0) -> dict[str, Any]:
        """A job's log lines after sequence number `after` (0: from the start)."""
        chunks = await client().logs(job_id, after)
        return {
            "job_id": job_id,
            "text": "".join(c.data for c in chunks),
            "next_after": chunks[-1].cursor if chunks else after,
        }

    @_tool(server)
    @_reported
    async def list_jobs(
        state: str | None = None,
        kind: str | None = None,
        queue: str | None = None,
        limit: int = 20,
    ) -> dict[str, Any]:
        """Recent jobs, newest first, optionally filtered by state (queued, running,
        succeeded, failed, cancelled, scheduled), kind and queue."""
        page = await client().list_jobs(
            state=state, kind=kind, queue=queue, limit=max(1, min(limit, MAX_LIST))
        )
        return {"jobs": to_json(page.jobs), "next_cursor": page.next_cursor}

    @_tool(server)
    @_reported
    async def run_workflow(
        name: str, inputs: dict[str, Any] | None = None, wait_s: float = 0
    ) -> dict[str, Any]:
        """Start a run of the workflow `name` with its `inputs`; with `wait_s` > 0, wait up to
        that many seconds (at most 60) for it to finish. Returns the run."""
        run = await client().run_workflow(name, inputs or {})
        if wait_s > 0:
            try:
                run = await client().wait_run(run.id, _wait(wait_s), run=run)
            except RunWaitTimeout as e:
                run = e.run
        result: dict[str, Any] = to_json(run)
        return result

    @_tool(server)
    @_reported
    async def get_run(run_id: str) -> dict[str, Any]:
        """A workflow run by id: its state, inputs and each step's state and output."""
        result: dict[str, Any] = to_json(await client().get_run(run_id))
        return result

    return server
