"""Inbound webhooks and event triggers, through the HTTP API of an in-memory faena."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson

from faena.domain.signatures import sign
from faena.ports.workflows import ListRunsParams
from faena.testing import InMemoryFaena

HOOKED = """
name: hooked
inputs: {amount: integer}
webhook: {verify: false}
steps: [{id: a, kind: double, with: {x: "{{ inputs.amount }}"}}]
"""


async def apply(http: httpx.AsyncClient, name: str, text: str) -> dict[str, object]:
    r = await http.put(
        f"/v1/workflows/{name}", content=text, headers={"Content-Type": "application/yaml"}
    )
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


async def wait_run(http: httpx.AsyncClient, run_id: str) -> dict[str, object]:
    return dict((await http.get(f"/v1/runs/{run_id}", params={"wait": 10})).json())


async def test_a_webhook_call_starts_a_run_with_the_body_as_inputs(
    http: httpx.AsyncClient,
) -> None:
    wf = await apply(http, "hooked", HOOKED)
    path = str(wf["webhook_path"])
    anonymous = httpx.AsyncClient(transport=http._transport, base_url="http://faena")
    r = await anonymous.post(path, json={"amount": 21})
    assert r.status_code == 202, r.text
    run = await wait_run(http, r.json()["run_id"])
    assert run["state"] == "succeeded" and run["trigger"] == "webhook"
    assert run["steps"][0]["output"] == 42  # type: ignore[index]
    first = await anonymous.post(path, json={"amount": 1}, headers={"Idempotency-Key": "k1"})
    again = await anonymous.post(path, json={"amount": 1}, headers={"Idempotency-Key": "k1"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["run_id"] == again.json()["run_id"]
    bad = await anonymous.post(path, content=b"{nope", headers={"Content-Type": "text/plain"})
    assert bad.status_code == 422 and "not JSON" in bad.json()["error"]["message"]
    bad = await anonymous.post(path, json=[1])
    assert bad.status_code == 422 and "JSON object" in bad.json()["error"]["message"]
    bad = await anonymous.post(path, json={"amount": "x"})
    assert bad.status_code == 422
    assert (await anonymous.post("/v1/hooks/wh_nope", json={})).status_code == 404


async def test_a_verified_webhook_needs_a_valid_fresh_signature(
    http: httpx.AsyncClient,
) -> None:
    wf = await apply(
        http,
        "signed",
        HOOKED.replace("name: hooked", "name: signed").replace("verify: false", "verify: true"),
    )
    path, secret = str(wf["webhook_path"]), str(wf["webhook_secret"])
    anonymous = httpx.AsyncClient(transport=http._transport, base_url="http://faena")
    body = orjson.dumps({"amount": 2})
    ts = int(time.time())
    good = {
        "X-Faena-Timestamp": str(ts),
        "X-Faena-Signature": sign(secret, ts, body),
        "Content-Type": "application/json",
    }
    assert (await anonymous.post(path, content=body, headers=good)).status_code == 202
    for headers in (
        {},
        {**good, "X-Faena-Signature": sign("wrong", ts, body)},
        {
            **good,
            "X-Faena-Timestamp": str(ts - 3600),
            "X-Faena-Signature": sign(secret, ts - 3600, body),
        },
    ):
        r = await anonymous.post(path, content=body, headers=headers)
        assert r.status_code == 401, r.text
        assert "signature" in r.json()["error"]["message"]


async def test_a_workflow_without_webhook_has_no_inbound_hook(http: httpx.AsyncClient) -> None:
    wf = await apply(http, "plain", "name: plain\nsteps: [{id: a, kind: noop}]\n")
    assert (await http.post(str(wf["webhook_path"]), json={})).status_code == 404


async def test_event_triggers_start_a_workflow_when_a_job_or_run_finishes(
    http: httpx.AsyncClient, faena: InMemoryFaena
) -> None:
    await apply(http, "source", "name: source\nsteps: [{id: a, kind: noop}]\n")
    await apply(
        http,
        "on_job",
        """
name: on_job
triggers: [{on: job, kind: double, state: succeeded}]
steps: [{id: a, kind: echo, with: {job: "{{ inputs.event.job_id }}"}}]
""",
    )
    await apply(
        http,
        "on_run",
        """
name: on_run
triggers: [{on: run, workflow: source, state: succeeded}]
steps: [{id: a, kind: echo, with: {run: "{{ inputs.event.run_id }}"}}]
""",
    )
    automation = faena.runtime.automation
    assert automation is not None
    for service in automation.services:
        if hasattr(service, "refresh"):
            await service.refresh()
    job = await faena.submit("double", {"x": 2})
    await faena.wait(job.id)
    source = (await http.post("/v1/workflows/source/runs", params={"wait": 10}, json={})).json()
    # Polled through the service: each in-process HTTP call re-imports sniffio (absent here)
    # through the whole sys.path, which is slow on a busy disk.
    workflows = faena.runtime.workflows
    assert workflows is not None
    found: dict[str, list[Any]] = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for name in ("on_job", "on_run"):
            page = await workflows.list_runs(ListRunsParams(faena.tenant, workflow=name))
            found[name] = page.runs
        if all(found.values()):
            break
        await asyncio.sleep(0.02)
    assert len(found["on_job"]) == 1 and len(found["on_run"]) == 1
    on_job = await workflows.wait_run(faena.tenant, found["on_job"][0].id, 10)
    on_run = await workflows.wait_run(faena.tenant, found["on_run"][0].id, 10)
    assert on_job.steps[0].output == {"job": job.id}
    assert on_run.steps[0].output == {"run": source["id"]}


async def test_subscriptions_and_deliveries_over_http(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/v1/subscriptions", json={"url": "http://127.0.0.1:9/x", "events": ["run.*"]}
    )
    assert r.status_code == 201 and r.json()["secret"].startswith("whsec_")
    sub_id = r.json()["id"]
    listed = (await http.get("/v1/subscriptions")).json()["subscriptions"]
    assert [s["id"] for s in listed] == [sub_id] and "secret" not in listed[0]
    assert (await http.get("/v1/deliveries", params={"state": "dead"})).json() == {"deliveries": []}
    assert (await http.get("/v1/deliveries", params={"state": "x"})).status_code == 422
    assert (await http.post("/v1/subscriptions", json={"url": "nope"})).status_code == 422
    assert (await http.delete(f"/v1/subscriptions/{sub_id}")).status_code == 204
    assert (await http.delete(f"/v1/subscriptions/{sub_id}")).status_code == 404
