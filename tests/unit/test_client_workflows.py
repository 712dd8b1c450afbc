"""The SDK's workflow methods (``Client`` and ``AsyncClient``) against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import faena
from faena.client import AppliedWorkflow, Client, Run, RunWaitTimeout
from faena.worker.registry import TaskRegistry, task
from tests.api.live import LiveServer

registry = TaskRegistry()


@task(registry=registry)
async def double(n: int) -> int:
    return n * 2


@task(registry=registry)
async def explode(n: int) -> None:
    raise RuntimeError(f"no {n}")


@task(registry=registry)
async def linger(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


CHAIN = """
name: chain
inputs: {n: integer}
steps:
  - {id: first, kind: double, with: {n: "{{ inputs.n }}"}}
  - {id: second, kind: double, needs: [first], with: {n: "{{ steps.first.output }}"}}
"""


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    live = LiveServer(registry).start()
    yield live
    live.stop()


@pytest.fixture
def client(server: LiveServer) -> Iterator[Client]:
    with Client(server.url, server.api_key, timeout=10) as c:
        yield c


@pytest.fixture
async def aclient(server: LiveServer) -> AsyncIterator[faena.AsyncClient]:
    async with faena.AsyncClient(server.url, server.api_key, timeout=10) as c:
        yield c


def test_apply_yaml_then_run_and_wait_gives_each_steps_output(client: Client) -> None:
    applied = client.apply_workflow(CHAIN)
    assert isinstance(applied, AppliedWorkflow) and applied.name == "chain"
    again = client.apply_workflow(CHAIN)
    assert (again.version, again.created) == (applied.version, False)

    run = client.run_workflow("chain", {"n": 5}, wait=True, timeout=10)

    assert run.state == "succeeded" and run.is_terminal
    assert run.outputs == {"first": 10, "second": 20}
    assert run.step("second").jobs and client.get(run.step("second").jobs[0] or "").result == 20
    assert client.get_run(run.id) == run


def test_many_runs_start_in_one_request(client: Client) -> None:
    client.apply_workflow(CHAIN.replace("name: chain", "name: many"))
    runs = client.run_workflow_many("many", [{"inputs": {"n": i}} for i in range(3)])
    assert [r.inputs for r in runs] == [{"n": 0}, {"n": 1}, {"n": 2}]
    done = [client.wait_run(r.id, timeout=10) for r in runs]
    assert [r.outputs["second"] for r in done] == [0, 4, 8]
    with pytest.raises(faena.ValidationError, match="run 1: "):
        client.run_workflow_many("many", [{"inputs": {"n": 1}}, {"inputs": {"n": "x"}}])


def test_apply_takes_a_mapping_a_file_and_a_builder(client: Client, tmp_path: Path) -> None:
    mapping = {"name": "mapped", "steps": [{"id": "a", "kind": "double", "with": {"n": 1}}]}
    assert client.apply_workflow(mapping).name == "mapped"
    path = tmp_path / "flow.yaml"
    path.write_text(CHAIN.replace("name: chain", "name: from-file"))
    assert client.apply_workflow(path).name == "from-file"
    wf = faena.workflow("built")
    wf.step("a", "double", with_={"n": 2})
    assert client.apply_workflow(wf).name == "built"
    assert client.run_workflow("built", wait=True, timeout=10).outputs == {"a": 4}


def test_an_invalid_definition_raises_the_servers_precise_error(client: Client) -> None:
    with pytest.raises(faena.ValidationError, match="unknown step 'nope'"):
        client.apply_workflow("name: bad\nsteps:\n  - {id: a, kind: double, needs: [nope]}\n")
    with pytest.raises(faena.ValidationError, match="no name"):
        client.apply_workflow({"steps": [{"id": "a", "kind": "double"}]})
    with pytest.raises(faena.NotFound):
        client.run_workflow("never-applied")
    with pytest.raises(faena.NotFound):
        client.get_run("0190c0de-0000-7000-8000-000000000000")


def test_list_runs_pages_and_filters(client: Client) -> None:
    client.apply_workflow(CHAIN.replace("name: chain", "name: listed"))
    started = [client.run_workflow("listed", {"n": i}) for i in range(3)]
    for run in started:
        client.wait_run(run.id, timeout=10)

    first = client.list_runs(workflow="listed", limit=2)
    assert len(first.runs) == 2 and first.next_cursor is not None
    rest = client.list_runs(workflow="listed", limit=2, cursor=first.next_cursor)
    ids = [r.id for r in first.runs + rest.runs]
    assert ids == [r.id for r in reversed(started)]
    assert client.list_runs(workflow="listed", state=["failed", "cancelled"]).runs == []


def test_cancel_then_retry_a_run(client: Client) -> None:
    client.apply_workflow("name: slow\nsteps:\n  - {id: a, kind: linger, with: {seconds: 30}}\n")
    run = client.run_workflow("slow")
    with pytest.raises(RunWaitTimeout) as waited:
        client.wait_run(run.id, timeout=0.2)
    assert waited.value.run.state == "running"

    cancelled = client.cancel_run(run.id)
    assert cancelled.state == "cancelled" and cancelled.step("a").state == "cancelled"
    with pytest.raises(faena.Conflict):
        client.cancel_run(run.id)

    retried = client.retry_run(run.id)
    assert retried.state == "running" and retried.step("a").tries == 1
    client.cancel_run(run.id)


async def test_the_async_client_does_the_same(aclient: faena.AsyncClient) -> None:
    await aclient.apply_workflow(CHAIN.replace("name: chain", "name: async-chain"))
    run = await aclient.run_workflow("async-chain", {"n": 1}, wait=True, timeout=10)
    assert isinstance(run, Run) and run.outputs == {"first": 2, "second": 4}
    assert (await aclient.get_run(run.id)).state == "succeeded"
    page = await aclient.list_runs(workflow="async-chain")
    assert [r.id for r in page.runs] == [run.id]
    [many] = await aclient.run_workflow_many("async-chain", [{"inputs": {"n": 2}}])
    assert (await aclient.wait_run(many.id, timeout=10)).outputs == {"first": 4, "second": 8}

    await aclient.apply_workflow(
        "name: broken\ninputs: {n: integer}\nsteps:\n  - {id: a, kind: explode, with: {n: 1}}\n"
    )
    failed = await aclient.run_workflow("broken", {"n": 1}, wait=True, timeout=10)
    assert failed.state == "failed" and "no 1" in (failed.step("a").error or "")
    retried = await aclient.retry_run(failed.id)
    assert retried.state == "running"
    assert (await aclient.wait_run(retried.id, timeout=10)).state == "failed"
    with pytest.raises(faena.Conflict):
        await aclient.cancel_run(failed.id)


def test_submit_takes_the_resources_an_attempt_needs(client: Client) -> None:
    handle = client.submit("double", {"n": 1}, resources={"cpu": 0.5, "memory_mb": 64})
    assert client.get(handle.id).resources == {"cpu": 0.5, "memory_mb": 64}
    with pytest.raises(faena.ValidationError, match=r"resources\.memory_mb"):
        client.submit("double", {"n": 1}, resources={"memory_mb": -1})
