"""An agent's tool calls are child jobs visible in the run: each child carries the agent job as
``parent_id`` (in the job JSON), ``GET /v1/jobs?parent_id=`` lists them, and
``GET /v1/runs/{id}`` shows them under the agent step."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from faena.bootstrap import Runtime
from faena.domain.jobs import DEFAULT_TENANT
from tests.ai.agent_support import ADMIN_KEY, agent_runtime, run_agent
from tests.ai.providers import FakeProvider, Reply

__all__ = ["agent_runtime"]

WORKFLOW = """
name: assistant
inputs:
  question: string
steps:
  - id: think
    kind: agent
    with:
      prompt: "{{ inputs.question }}"
      model: fake/m
      tools: [double, lookup_customer]
  - id: after
    kind: noop
    needs: [think]
"""


@pytest.fixture
async def http(agent_runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(agent_runtime.app()),
        base_url="http://faena",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ) as client:
        yield client


async def test_tool_jobs_name_the_agent_as_their_parent(
    agent_runtime: Runtime, fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    fake.script(
        Reply(tool_calls=[("double", {"x": 2}), ("lookup_customer", {"name": "Ada"})]),
        Reply(tool_calls=[("double", {"x": 4})]),
        Reply(text="done"),
    )
    job = await run_agent(
        agent_runtime,
        {"prompt": "go", "model": "fake/m", "tools": ["double", "lookup_customer"]},
    )
    assert job.state.value == "succeeded", job.error
    ids = [c["job_id"] for c in job.result["tool_calls"]]
    listed = (await http.get("/v1/jobs", params={"parent_id": job.id})).json()["jobs"]
    assert sorted(j["id"] for j in listed) == sorted(ids) and len(ids) == 3
    assert {j["parent_id"] for j in listed} == {job.id}
    assert listed[0]["id"] == ids[2]  # newest first: the call of the second step
    child = (await http.get(f"/v1/jobs/{ids[0]}")).json()
    assert child["parent_id"] == job.id
    agent = (await http.get(f"/v1/jobs/{job.id}")).json()
    assert "parent_id" not in agent  # only spawned jobs carry one
    unrelated = await http.get("/v1/jobs", params={"parent_id": ids[0]})
    assert unrelated.json()["jobs"] == []


async def test_a_run_shows_its_agent_steps_child_jobs(
    agent_runtime: Runtime, fake: FakeProvider, http: httpx.AsyncClient
) -> None:
    r = await http.put(
        "/v1/workflows/assistant", content=WORKFLOW, headers={"Content-Type": "application/yaml"}
    )
    assert r.status_code == 201, r.text
    fake.script(Reply(tool_calls=[("double", {"x": 21})]), Reply(text="42"))
    r = await http.post("/v1/workflows/assistant/runs", json={"inputs": {"question": "21*2?"}})
    assert r.status_code == 201, r.text
    run = (await http.get(f"/v1/runs/{r.json()['id']}", params={"wait": 20})).json()
    assert run["state"] == "succeeded", run
    think, after = run["steps"]
    (agent_job,) = think["jobs"]
    (child,) = think["children"]
    assert (child["kind"], child["state"], child["parent_id"]) == ("double", "succeeded", agent_job)
    assert "children" not in after  # a plain step spawns nothing
    stored = await agent_runtime.orchestrator.get(DEFAULT_TENANT, child["id"])
    assert stored.parent_id == agent_job and stored.result == 42
