"""``faena mcp`` driven by a real MCP client session (the official SDK), over stdio and
streamable HTTP, against a real faena server; the API key bounds what it may do."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from faena.domain.jobs import DEFAULT_TENANT
from faena.worker.context import current_job
from faena.worker.registry import TaskRegistry, task
from tests.api.live import LiveServer

registry = TaskRegistry()

WORKFLOW = """
name: greet
description: Say hello to someone.
inputs:
  who: string
steps:
  - id: hello
    kind: hello
    with: {name: "{{ inputs.who }}"}
"""


@task(registry=registry)
async def hello(name: str) -> str:
    current_job().log(f"greeting {name}")
    return f"hello {name}"


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    server = LiveServer(registry).start()
    response = httpx.put(
        f"{server.url}/v1/workflows/greet",
        content=WORKFLOW,
        headers={"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/yaml"},
    )
    assert response.status_code in (200, 201), response.text
    try:
        yield server
    finally:
        server.stop()


def _env(live: LiveServer, key: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "FAENA_SERVER": live.url,
        "FAENA_API_KEY": key,
        "HOME": os.environ.get("HOME", "/tmp"),
    }


@asynccontextmanager
async def stdio_session(live: LiveServer, key: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "faena", "mcp"], env=_env(live, key)
    )
    async with AsyncExitStack() as stack:
        devnull = stack.enter_context(open(os.devnull, "w"))  # noqa: ASYNC230, SIM115
        read, write = await stack.enter_async_context(stdio_client(params, devnull))
        session = await stack.enter_async_context(ClientSession(read, write))
        await session.initialize()
        yield session


def _data(result: Any) -> Any:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        content = result.structured_content
        return content.get("result", content) if set(content) == {"result"} else content
    return orjson.loads(result.content[0].text)


async def test_lists_faena_tools(live: LiveServer) -> None:
    async with stdio_session(live, live.api_key) as session:
        tools = {t.name for t in (await session.list_tools()).tools}
    assert {"submit_job", "get_job", "job_logs", "list_jobs", "run_workflow", "get_run"} <= tools


async def test_submits_a_job_and_reads_its_result_and_logs(live: LiveServer) -> None:
    async with stdio_session(live, live.api_key) as session:
        job = _data(
            await session.call_tool(
                "submit_job", {"kind": "hello", "payload": {"name": "Ada"}, "wait_s": 20}
            )
        )
        assert job["state"] == "succeeded" and job["result"] == "hello Ada"
        again = _data(await session.call_tool("get_job", {"job_id": job["id"]}))
        assert again["id"] == job["id"] and again["tenant"] == DEFAULT_TENANT
        logs = _data(await session.call_tool("job_logs", {"job_id": job["id"]}))
        assert "greeting Ada" in logs["text"]
        listed = _data(await session.call_tool("list_jobs", {"kind": "hello"}))
        assert job["id"] in [j["id"] for j in listed["jobs"]]


async def test_runs_a_workflow(live: LiveServer) -> None:
    async with stdio_session(live, live.api_key) as session:
        run = _data(
            await session.call_tool(
                "run_workflow", {"name": "greet", "inputs": {"who": "Grace"}, "wait_s": 20}
            )
        )
        assert run["state"] == "succeeded"
        fetched = _data(await session.call_tool("get_run", {"run_id": run["id"]}))
        assert fetched["id"] == run["id"] and fetched["workflow"] == "greet"


async def test_the_api_key_scopes_what_the_assistant_can_do(live: LiveServer) -> None:
    assert live.faena is not None
    reader = live.call(live.faena.runtime.keys.create(DEFAULT_TENANT, "assistant", ["jobs:read"]))
    async with stdio_session(live, reader.plaintext) as session:
        refused = await session.call_tool("submit_job", {"kind": "hello", "payload": {"name": "x"}})
        assert refused.is_error
        assert "scope" in " ".join(getattr(c, "text", "") for c in refused.content)
        assert not (await session.call_tool("list_jobs", {})).is_error
    async with stdio_session(live, "fk_not_a_key") as session:
        refused = await session.call_tool("list_jobs", {})
        assert refused.is_error


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_serves_streamable_http(live: LiveServer) -> None:
    port = _free_port()
    process = subprocess.Popen(  # noqa: ASYNC220 - a server for the test's whole length
        [sys.executable, "-m", "faena", "mcp", "--http", str(port)],
        env=_env(live, live.api_key),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)  # noqa: ASYNC251 - before any session exists
        async with AsyncExitStack() as stack:
            read, write = await stack.enter_async_context(
                streamable_http_client(f"http://127.0.0.1:{port}/mcp")
            )
            session = await stack.enter_async_context(ClientSession(read, write))
            await session.initialize()
            job = _data(
                await session.call_tool(
                    "submit_job", {"kind": "hello", "payload": {"name": "Linus"}, "wait_s": 20}
                )
            )
            assert job["result"] == "hello Linus"
    finally:
        process.terminate()
        process.wait(10)
