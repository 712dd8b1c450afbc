"""Agents calling the tools of MCP servers (a small server written with the official SDK in
``mcp_calc_server.py``), over stdio and streamable HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from faena.bootstrap import Runtime
from tests.ai.agent_support import agent_runtime, run_agent
from tests.ai.providers import FakeProvider, Reply

__all__ = ["agent_runtime"]

CALC = str(Path(__file__).with_name("mcp_calc_server.py"))


async def test_an_agent_calls_a_stdio_mcp_tool(agent_runtime: Runtime, fake: FakeProvider) -> None:
    fake.script(Reply(tool_calls=[("calc__add", {"a": 2, "b": 3})]), Reply(text="5"))
    job = await run_agent(
        agent_runtime,
        {
            "prompt": "add 2 and 3",
            "model": "fake/m",
            "mcp": [{"name": "calc", "command": [sys.executable, CALC]}],
        },
    )
    assert job.state.value == "succeeded", job.error
    (call,) = job.result["tool_calls"]
    assert call["mcp"] == "calc" and call["tool"] == "calc__add" and "error" not in call
    offered = {t["function"]["name"] for t in fake.requests[0]["tools"]}
    assert offered == {"calc__add", "calc__shout"}
    tool_message = fake.requests[1]["messages"][-1]
    assert tool_message["role"] == "tool" and "5" in tool_message["content"]


async def test_the_tools_list_restricts_what_is_offered(
    agent_runtime: Runtime, fake: FakeProvider
) -> None:
    fake.script(Reply(tool_calls=[("calc__add", {"a": 1, "b": 1})]), Reply(text="no"))
    job = await run_agent(
        agent_runtime,
        {
            "prompt": "shout",
            "model": "fake/m",
            "mcp": [{"name": "calc", "command": [sys.executable, CALC], "tools": ["shout"]}],
        },
    )
    assert job.state.value == "succeeded", job.error
    assert {t["function"]["name"] for t in fake.requests[0]["tools"]} == {"calc__shout"}
    assert job.result["tool_calls"][0]["error"] == "unknown tool 'calc__add'"


async def test_a_broken_mcp_server_fails_the_job_clearly(
    agent_runtime: Runtime, fake: FakeProvider
) -> None:
    job = await run_agent(
        agent_runtime,
        {
            "prompt": "x",
            "model": "fake/m",
            "mcp": [{"name": "gone", "command": [sys.executable, "-c", "raise SystemExit(3)"]}],
        },
    )
    assert job.state.value == "failed"
    assert job.error is not None and job.error.startswith("MCP server 'gone':")
    assert fake.calls == 0


@pytest.fixture
def calc_http() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, CALC, "--http", str(port)],
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
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)


async def test_an_agent_calls_a_streamable_http_mcp_tool(
    agent_runtime: Runtime, fake: FakeProvider, calc_http: str
) -> None:
    fake.script(Reply(tool_calls=[("calc__shout", {"text": "hi"})]), Reply(text="HI"))
    job = await run_agent(
        agent_runtime,
        {"prompt": "shout hi", "model": "fake/m", "mcp": [{"name": "calc", "url": calc_http}]},
    )
    assert job.state.value == "succeeded", job.error
    assert "HI" in fake.requests[1]["messages"][-1]["content"]
