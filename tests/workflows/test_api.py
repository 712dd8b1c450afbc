"""The workflows HTTP API end to end on an in-memory faena with a real local pool."""

from __future__ import annotations

import httpx

from faena.testing import InMemoryFaena

FLOW = """
name: intake
inputs:
  url: string
  threshold: {type: integer, default: 1000}
steps:
  - id: text
    kind: extract
    with: {url: "{{ inputs.url }}"}
  - id: twice
    kind: double
    needs: [text]
    with: {x: "{{ steps.text.output.amount }}"}
  - id: tell
    kind: noop
    needs: [twice]
    when: "{{ steps.twice.output > inputs.threshold }}"
  - id: each
    kind: double
    needs: [text]
    for_each: "{{ steps.text.output.lines }}"
    max_parallel: 2
    with: {x: "{{ item }}"}
"""


async def put_yaml(http: httpx.AsyncClient, name: str, text: str) -> httpx.Response:
    return await http.put(
        f"/v1/workflows/{name}", content=text, headers={"Content-Type": "application/yaml"}
    )


async def test_apply_run_and_read_a_workflow_over_http(http: httpx.AsyncClient) -> None:
    r = await put_yaml(http, "intake", FLOW)
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1 and r.json()["webhook_path"].startswith("/v1/hooks/")
    assert (await put_yaml(http, "intake", FLOW)).status_code == 200  # unchanged: same version
    r = await http.post(
        "/v1/workflows/intake/runs", params={"wait": 10}, json={"inputs": {"url": "a/b"}}
    )
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["state"] == "succeeded", run
    steps = {s["id"]: s for s in run["steps"]}
    assert steps["text"]["output"] == {"amount": 300, "lines": ["a", "b"]}
    assert steps["twice"]["output"] == 600
    assert steps["tell"]["state"] == "skipped"
    assert steps["each"]["output"] == ["aa", "bb"] and steps["each"]["items"] == 2
    assert steps["text"]["attempts"] == 1 and steps["text"]["started_at"]
    got = await http.get(f"/v1/runs/{run['id']}")
    assert got.json() == run
    listed = await http.get("/v1/runs", params={"workflow": "intake"})
    assert [x["id"] for x in listed.json()["runs"]] == [run["id"]]
    wf = (await http.get("/v1/workflows/intake")).json()
    assert wf["latest_version"] == 1 and wf["versions"][0]["version"] == 1
    assert [w["name"] for w in (await http.get("/v1/workflows")).json()["workflows"]] == ["intake"]


async def test_json_definitions_are_accepted(http: httpx.AsyncClient) -> None:
    r = await http.put("/v1/workflows/j", json={"steps": [{"id": "a", "kind": "noop"}]})
    assert r.status_code == 201, r.text
    r = await http.get("/v1/workflows/j/versions/1")
    assert r.json()["definition"]["steps"] == [{"id": "a", "kind": "noop"}]


async def test_validation_errors_name_the_step_and_line(http: httpx.AsyncClient) -> None:
    cases = {
        "name: bad\nsteps:\n  - id: a\n    kind: noop\n    needs: [b]\n": "step 'a' (line 3)",
        "name: bad\nsteps:\n  - {id: a, kind: noop, needs: [b]}\n  - {id: b, kind: noop, "
        "needs: [a]}\n": "cycle",
        "name: bad\nsteps:\n  - {id: a, kind: nope}\n": "unknown kind 'nope'",
        "name: bad\nsteps:\n  - {id: a, kind: noop}\n  - {id: a, kind: noop}\n": "duplicate",
        "name: bad\nsteps:\n  - {id: a, kind: noop, with: {x: '{{ inputs.y }}'}}\n": (
            "not a declared input"
        ),
        "name: bad\nsteps:\n  - {id: a, kind: noop, with: {x: '{{ 1 + }}'}}\n": "syntax",
        "name: bad\nsteps: [\n": "invalid YAML at line",
        "name: bad\nschedule: '61 * * * *'\nsteps: [{id: a, kind: noop}]\n": "cron",
    }
    for text, expected in cases.items():
        r = await put_yaml(http, "bad", text)
        assert r.status_code == 422, (text, r.text)
        assert expected in r.json()["error"]["message"], (text, r.json())
    r = await put_yaml(http, "other", "name: bad\nsteps: [{id: a, kind: noop}]\n")
    assert r.status_code == 422 and "URL" in r.json()["error"]["message"]
    r = await http.put(
        "/v1/workflows/x", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400


async def test_bad_run_requests_are_clear_4xx(http: httpx.AsyncClient) -> None:
    assert (await put_yaml(http, "intake", FLOW)).status_code == 201
    r = await http.post("/v1/workflows/intake/runs", json={"inputs": {"url": 3}})
    assert r.status_code == 422 and "type string" in r.json()["error"]["message"]
    r = await http.post("/v1/workflows/intake/runs", json={"inputs": {}})
    assert r.status_code == 422 and "missing input" in r.json()["error"]["message"]
    r = await http.post("/v1/workflows/nope/runs", json={})
    assert r.status_code == 404
    r = await http.post("/v1/workflows/intake/runs", json={"inputs": {"url": "x"}, "version": 9})
    assert r.status_code == 404 and "version 9" in r.json()["error"]["message"]
    r = await http.post(
        "/v1/workflows/intake/runs", content=b"nope", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400
    assert (await http.get("/v1/runs/nope")).status_code == 404
    assert (await http.get("/v1/runs", params={"state": "weird"})).status_code == 422


async def test_many_runs_start_in_one_request(http: httpx.AsyncClient) -> None:
    """``POST /v1/workflows/{name}/runs/batch``: every run validated first (a bad one names its
    index and none starts), then all stored with their first steps in one transaction."""
    assert (await put_yaml(http, "intake", FLOW)).status_code == 201
    r = await http.post(
        "/v1/workflows/intake/runs/batch",
        json=[{"inputs": {"url": "a"}}, {"inputs": {"url": 3}}],
    )
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("run 1: ")
    assert (await http.get("/v1/runs")).json()["runs"] == []
    r = await http.post(
        "/v1/workflows/intake/runs/batch",
        json={
            "runs": [
                {"inputs": {"url": "a/b"}, "idempotency_key": "k"},
                {"inputs": {"url": "c"}},
            ]
        },
    )
    assert r.status_code == 201, r.text
    first, second = r.json()
    assert first["created"] and second["created"] and first["state"] == "running"
    assert first["steps"][0]["state"] == "running" and first["steps"][0]["jobs"]
    again = await http.post(
        "/v1/workflows/intake/runs/batch", json=[{"inputs": {"url": "x"}, "idempotency_key": "k"}]
    )
    assert again.status_code == 201
    assert [(x["id"], x["created"]) for x in again.json()] == [(first["id"], False)]
    done = await http.get(f"/v1/runs/{second['id']}", params={"wait": 10})
    assert done.json()["state"] == "succeeded"
    assert (await http.post("/v1/workflows/intake/runs/batch", json=[])).status_code == 422


async def test_a_failing_step_fails_the_run_and_retry_reruns_it(
    http: httpx.AsyncClient, faena: InMemoryFaena
) -> None:
    flow = """
name: flaky
inputs: {x: integer}
steps:
  - {id: a, kind: double, with: {x: "{{ inputs.x }}"}}
  - {id: b, kind: boom, needs: [a], with: {message: "got {{ steps.a.output }}"}}
"""
    assert (await put_yaml(http, "flaky", flow)).status_code == 201
    run = (
        await http.post("/v1/workflows/flaky/runs", params={"wait": 10}, json={"inputs": {"x": 4}})
    ).json()
    assert run["state"] == "failed"
    assert "got 8" in run["steps"][1]["error"] and "got 8" in run["error"]
    r = await http.post(f"/v1/runs/{run['id']}/retry")
    assert r.status_code == 200 and r.json()["state"] == "running"
    again = (await http.get(f"/v1/runs/{run['id']}", params={"wait": 10})).json()
    assert again["state"] == "failed"
    assert again["steps"][0]["jobs"] == run["steps"][0]["jobs"]  # the finished step is kept
    assert again["steps"][1]["tries"] == 1
    assert (await http.post(f"/v1/runs/{run['id']}/cancel")).status_code == 409


async def test_cancel_a_running_run(http: httpx.AsyncClient) -> None:
    flow = "name: slow\nsteps:\n  - {id: a, kind: sleep, with: {seconds: 30}}\n"
    assert (await put_yaml(http, "slow", flow)).status_code == 201
    run = (await http.post("/v1/workflows/slow/runs", json={})).json()
    r = await http.post(f"/v1/runs/{run['id']}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    job = (await http.get(f"/v1/jobs/{run['steps'][0]['jobs'][0]}", params={"wait": 5})).json()
    assert job["state"] == "cancelled"


async def test_workflow_scopes_are_enforced(http: httpx.AsyncClient) -> None:
    r = await http.post("/v1/keys", json={"name": "reader", "scopes": ["workflows:read"]})
    assert r.status_code == 201, r.text
    reader = {"Authorization": f"Bearer {r.json()['key']}"}
    assert (await http.get("/v1/workflows", headers=reader)).status_code == 200
    r = await http.put("/v1/workflows/x", json={"steps": []}, headers=reader)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert (
        await http.get("/v1/workflows", headers={"Authorization": "Bearer no"})
    ).status_code == 401
