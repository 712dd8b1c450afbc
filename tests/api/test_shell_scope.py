"""``shell`` runs code on a worker: submitting it — alone, in a batch, by retrying one, or as
a workflow step at apply and at run time — needs the ``jobs:shell`` scope (or admin)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from faena.testing import InMemoryFaena
from tests.api.conftest import assert_error

BASE = ["jobs:read", "jobs:write", "workflows:read", "workflows:write"]
SHELL = {"kind": "shell", "payload": {"command": "exit 3"}}
FLOW = {"name": "sh", "steps": [{"id": "a", "kind": "shell", "with": {"command": "echo hi"}}]}


class Keys:
    def __init__(self, faena: InMemoryFaena, client: httpx.AsyncClient, plain: str, shell: str):
        self.faena, self.client = faena, client
        self.plain, self.shell = (
            {"Authorization": f"Bearer {plain}"},
            {"Authorization": f"Bearer {shell}"},
        )


@pytest.fixture
async def keys() -> AsyncIterator[Keys]:
    async with InMemoryFaena() as faena:
        service = faena.runtime.keys
        plain = (await service.create("default", "plain", BASE)).plaintext
        shell = (await service.create("default", "shell", [*BASE, "jobs:shell"])).plaintext
        transport = httpx.ASGITransport(faena.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://faena") as client:
            yield Keys(faena, client, plain, shell)


def refused(response: httpx.Response) -> None:
    assert "'jobs:shell'" in assert_error(response, 403, "forbidden")


async def test_a_shell_job_needs_the_shell_scope(keys: Keys) -> None:
    refused(await keys.client.post("/v1/jobs", json=SHELL, headers=keys.plain))
    allowed = await keys.client.post("/v1/jobs", json=SHELL, headers=keys.shell)
    assert allowed.status_code == 201, allowed.text


async def test_a_batch_with_one_shell_job_needs_the_shell_scope(keys: Keys) -> None:
    batch = [{"kind": "noop"}, SHELL]
    refused(await keys.client.post("/v1/jobs/batch", json=batch, headers=keys.plain))
    stats = await keys.client.get("/v1/stats", headers=keys.plain)
    assert sum(stats.json()["by_state"].values()) == 0  # nothing of the batch was stored


async def test_retrying_a_shell_job_needs_the_shell_scope(keys: Keys) -> None:
    job: dict[str, Any] = (
        await keys.client.post("/v1/jobs", json=SHELL, headers=keys.shell)
    ).json()
    done = await keys.faena.wait(job["id"])
    assert done.state.value == "failed"
    refused(await keys.client.post(f"/v1/jobs/{job['id']}/retry", headers=keys.plain))
    retried = await keys.client.post(f"/v1/jobs/{job['id']}/retry", headers=keys.shell)
    assert retried.status_code == 200, retried.text


async def test_a_workflow_with_a_shell_step_needs_the_shell_scope(keys: Keys) -> None:
    refused(await keys.client.put("/v1/workflows/sh", json=FLOW, headers=keys.plain))
    applied = await keys.client.put("/v1/workflows/sh", json=FLOW, headers=keys.shell)
    assert applied.status_code in (200, 201), applied.text
    # Applied by a key allowed to: a key without the scope still may not start it.
    refused(await keys.client.post("/v1/workflows/sh/runs", json={}, headers=keys.plain))
    run = await keys.client.post("/v1/workflows/sh/runs", json={}, headers=keys.shell)
    assert run.status_code == 201, run.text


# -- an agent starting an MCP server command (stdio) runs code too -------------------------

MCP_STDIO = {"name": "calc", "command": ["python", "-m", "calc"]}
AGENT_STDIO = {"kind": "agent", "payload": {"prompt": "add", "mcp": [MCP_STDIO]}}
AGENT_HTTP = {
    "kind": "agent",
    "payload": {"prompt": "add", "mcp": [{"name": "calc", "url": "http://127.0.0.1:9/mcp"}]},
}


async def test_an_agent_with_an_mcp_command_needs_the_shell_scope(keys: Keys) -> None:
    response = await keys.client.post("/v1/jobs", json=AGENT_STDIO, headers=keys.plain)
    assert "MCP server command" in assert_error(response, 403, "forbidden")
    allowed = await keys.client.post("/v1/jobs", json=AGENT_STDIO, headers=keys.shell)
    assert allowed.status_code == 201, allowed.text


async def test_an_agent_with_only_http_mcp_servers_needs_no_shell_scope(keys: Keys) -> None:
    response = await keys.client.post("/v1/jobs", json=AGENT_HTTP, headers=keys.plain)
    assert response.status_code == 201, response.text


async def test_a_batch_with_an_mcp_command_agent_needs_the_shell_scope(keys: Keys) -> None:
    batch = [{"kind": "noop"}, AGENT_STDIO]
    refused(await keys.client.post("/v1/jobs/batch", json=batch, headers=keys.plain))


async def test_retrying_an_mcp_command_agent_needs_the_shell_scope(keys: Keys) -> None:
    job: dict[str, Any] = (
        await keys.client.post("/v1/jobs", json=AGENT_STDIO, headers=keys.shell)
    ).json()
    await keys.client.post(f"/v1/jobs/{job['id']}/cancel", headers=keys.shell)
    refused(await keys.client.post(f"/v1/jobs/{job['id']}/retry", headers=keys.plain))
    retried = await keys.client.post(f"/v1/jobs/{job['id']}/retry", headers=keys.shell)
    assert retried.status_code == 200, retried.text


@pytest.mark.parametrize(
    "mcp",
    [[MCP_STDIO], "{{ inputs.servers }}", ["{{ inputs.server }}"]],
    ids=["command", "templated-list", "templated-entry"],
)
async def test_a_workflow_with_an_agent_step_that_may_start_a_command_needs_the_shell_scope(
    keys: Keys, mcp: Any
) -> None:
    """A templated ``mcp`` could become a command at run time: it counts as one."""
    inputs = {
        "servers": {"type": "array", "default": []},
        "server": {"type": "object", "default": {}},
    }
    step = {"id": "a", "kind": "agent", "with": {"prompt": "x", "mcp": mcp}}
    flow = {"name": "ag", "inputs": inputs, "steps": [step]}
    refused(await keys.client.put("/v1/workflows/ag", json=flow, headers=keys.plain))
    applied = await keys.client.put("/v1/workflows/ag", json=flow, headers=keys.shell)
    assert applied.status_code in (200, 201), applied.text
    refused(await keys.client.post("/v1/workflows/ag/runs", json={}, headers=keys.plain))


async def test_a_pool_without_shell_fails_an_mcp_command_agent_with_a_clear_error() -> None:
    """``faena up --no-shell``: the local pool refuses the job (the scope was not the issue)."""
    async with InMemoryFaena(allow_shell=False) as faena:
        job = await faena.submit("agent", AGENT_STDIO["payload"])
        done = await faena.wait(job.id)
    assert done.state.value == "failed"
    assert done.error is not None and "shell is disabled" in done.error
    assert done.attempts == 1  # not retried: another attempt on this pool would fail the same
