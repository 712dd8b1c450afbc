"""Structured logs carry the request id and tenant inside a request, and the job id (and its
tenant) while an attempt runs, without the code passing them along."""

# No `from __future__ import annotations`: FastAPI reads the test route's signature, whose
# dependency is local to the test.

from typing import Annotated

import httpx
import structlog
from fastapi import Depends
from structlog.testing import capture_logs

from faena.api.auth import Authenticator
from faena.domain.auth import Principal
from faena.testing import InMemoryFaena
from faena.worker.registry import TaskRegistry, task

MERGE = [structlog.contextvars.merge_contextvars]


async def test_a_line_logged_in_a_request_has_its_request_id_and_tenant() -> None:
    async with InMemoryFaena(workers=0) as faena:
        app = faena.app
        reader = Authenticator(faena.runtime.keys).require("jobs:read")

        @app.get("/v1/test-log")
        async def logs(principal: Annotated[Principal, Depends(reader)]) -> dict[str, str]:
            structlog.get_logger("test").info("inside the request")
            return {}

        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://faena.test") as c:
            with capture_logs(processors=MERGE) as captured:
                response = await c.get(
                    "/v1/test-log",
                    headers={"Authorization": f"Bearer {faena.api_key}", "X-Request-ID": "r-42"},
                )
    assert response.status_code == 200
    [line] = [e for e in captured if e["event"] == "inside the request"]
    assert line["request_id"] == "r-42"
    assert line["tenant"] == "default"
    assert "request_id" not in structlog.contextvars.get_contextvars()  # nothing leaks out


async def test_a_line_logged_by_a_running_job_has_its_job_id() -> None:
    registry = TaskRegistry()

    @task(registry=registry)
    async def chatty() -> None:
        structlog.get_logger("test").info("inside the job")

    async with InMemoryFaena(registry=registry) as faena:
        with capture_logs(processors=MERGE) as captured:
            job = await faena.submit("chatty")
            await faena.wait(job.id)
    [line] = [e for e in captured if e["event"] == "inside the job"]
    assert line["job_id"] == job.id
    assert line["tenant"] == "default"
