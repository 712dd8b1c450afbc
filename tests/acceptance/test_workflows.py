"""Workflows as a user runs them: apply YAML and run it through the CLI, kill -9 the server in
the middle of a run and restart it; the run resumes where it stood and finishes once."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import pytest

from tests.acceptance.conftest import Env

pytestmark = pytest.mark.acceptance

TASKS = """
import os
import time

import faena

@faena.task
async def extract(url: str) -> dict:
    return {"amount": len(url), "pages": url.split("/")}

@faena.task
def page(name: str) -> str:
    with open(os.environ["RECORD_FILE"], "a") as f:
        f.write(f"{name} {faena.current_job().attempt}\\n")
    time.sleep(1.5)
    return name.upper()

@faena.task
async def summarize(pages: list, amount: int) -> dict:
    return {"text": "+".join(pages), "amount": amount}
"""

FLOW = """
name: intake
inputs:
  url: string
  limit: {type: integer, default: 1000}
steps:
  - id: text
    kind: extract
    with: {url: "{{ inputs.url }}"}
  - id: pages
    kind: page
    needs: [text]
    for_each: "{{ steps.text.output.pages }}"
    max_parallel: 2
    retries: 2
    with: {name: "{{ item }}"}
  - id: alert
    kind: noop
    needs: [text]
    when: "{{ steps.text.output.amount > inputs.limit }}"
  - id: summary
    kind: summarize
    needs: [pages]
    with: {pages: "{{ steps.pages.output }}", amount: "{{ steps.text.output.amount }}"}
"""


def run_json(env: Env, *args: str) -> dict[str, Any]:
    return dict(json.loads(env.cli("--json", "workflow", *args, timeout=90).stdout))


def test_a_workflow_survives_kill_9_and_restart(faena_env: Env) -> None:
    faena_env.write("acc_flow_tasks.py", TASKS)
    record = faena_env.root / "record.txt"
    faena_env.env["RECORD_FILE"] = str(record)
    faena_env.env["FAENA_WORKFLOW_SWEEP_S"] = "0.5"
    flow = faena_env.write("flow.yaml", FLOW)
    process = faena_env.up("--import", "acc_flow_tasks", "--workers", "4")
    applied = faena_env.cli("workflow", "apply", str(flow))
    assert "version 1 (applied)" in applied.stdout

    run = run_json(faena_env, "run", "intake", "--input", '{"url": "a/b/c/d"}')
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # kill while the fan-out is half done
        if record.exists() and len(record.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    process.kill(signal.SIGKILL)

    faena_env.up("--import", "acc_flow_tasks", "--workers", "4")
    final = run_json(faena_env, "show", run["id"], "--wait")
    steps = {s["id"]: s for s in final["steps"]}
    assert final["state"] == "succeeded", final
    assert steps["text"]["output"] == {"amount": 7, "pages": ["a", "b", "c", "d"]}
    assert steps["pages"]["output"] == ["A", "B", "C", "D"]
    assert steps["alert"]["state"] == "skipped"
    assert steps["summary"]["output"] == {"text": "A+B+C+D", "amount": 7}
    assert len(steps["pages"]["jobs"]) == 4  # one job per item, never a duplicate
    executed = {line.split()[0] for line in record.read_text().splitlines()}
    assert executed == {"a", "b", "c", "d"}


def test_run_wait_prints_the_outcome_and_fails_with_the_run(faena_env: Env) -> None:
    faena_env.write("acc_flow_tasks.py", TASKS)
    faena_env.env["RECORD_FILE"] = str(faena_env.root / "record.txt")
    flow = faena_env.write(
        "flow.yaml",
        FLOW.replace("limit: {type: integer, default: 1000}", "limit: {type: integer, default: 1}"),
    )
    faena_env.up("--import", "acc_flow_tasks", "--workers", "4")
    faena_env.cli("workflow", "apply", str(flow))
    done = faena_env.cli("workflow", "run", "intake", "--input", '{"url": "x"}', "--wait")
    assert "succeeded" in done.stdout and "summary" in done.stdout
    listed = faena_env.cli("workflow", "runs")
    assert "intake" in listed.stdout
    bad = faena_env.cli("workflow", "run", "intake", "--input", '{"url": 5}', check=False)
    assert bad.returncode == 1 and "must be of type string" in bad.stderr
    broken = faena_env.write(
        "broken.yaml", "name: b\nsteps:\n  - {id: a, kind: noop, needs: [z]}\n"
    )
    bad = faena_env.cli("workflow", "apply", str(broken), check=False)
    assert bad.returncode == 1 and "step 'a' (line 3): needs unknown step 'z'" in bad.stderr


CRON_FLOW = """
name: nightly
schedule: "0 3 * * *"
steps: [{id: a, kind: noop}]
"""


def test_cron_ticks_fire_exactly_once_with_two_servers_on_postgres(tmp_path: Any) -> None:
    """Two ``faena server`` processes poll one PostgreSQL every 0.1 s; each tick made due
    (by moving the schedule's next tick into the past) starts exactly one run."""
    import asyncio

    import asyncpg

    from tests.acceptance.conftest import FaenaProcess, _postgres_database

    for url in _postgres_database():
        env = Env(tmp_path, url)
        env.env["FAENA_SCHEDULE_POLL_S"] = "0.1"
        servers = [
            FaenaProcess(
                ["server", "--port", "0", "--grpc-port", "0", "--workers", "2"], tmp_path, env.env
            ).start()
            for _ in range(2)
        ]
        env.processes.extend(servers)
        try:
            env.env["FAENA_SERVER"] = servers[0].url
            env.write("nightly.yaml", CRON_FLOW)
            env.cli("workflow", "apply", "nightly.yaml")

            async def make_due(tick: int, url: str = url) -> None:
                conn = await asyncpg.connect(url)
                try:
                    await conn.execute(
                        "UPDATE workflow_schedules SET next_fire_at = $1", float(tick)
                    )
                finally:
                    await conn.close()

            base = int(time.time()) - 5
            for i in range(3):
                asyncio.run(make_due(base - 10 * i))
                deadline = time.monotonic() + 10
                with env.api() as api:
                    while time.monotonic() < deadline:
                        page = api.get("/v1/runs", params={"workflow": "nightly"}).json()
                        if len(page["runs"]) > i:
                            break
                        time.sleep(0.05)
            time.sleep(1.0)  # both servers polled many more times meanwhile
            with env.api() as api:
                found = api.get("/v1/runs", params={"workflow": "nightly"}).json()["runs"]
            assert len(found) == 3, found
            assert {r["trigger"] for r in found} == {"schedule"}
        finally:
            env.close()


def test_outbound_webhooks_are_signed_and_retried_after_a_500(faena_env: Env) -> None:
    import http.server
    import threading

    from faena.domain.signatures import verify

    received: list[tuple[dict[str, str], bytes, int]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = 500 if not received else 200
            received.append((dict(self.headers), body, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        faena_env.env["FAENA_DELIVERY_POLL_S"] = "0.1"
        faena_env.up()
        with faena_env.api() as api:
            url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
            sub = api.post("/v1/subscriptions", json={"url": url, "events": ["run.state"]})
            assert sub.status_code == 201, sub.text
            secret = sub.json()["secret"]
            assert (
                api.put(
                    "/v1/workflows/ping", json={"steps": [{"id": "a", "kind": "noop"}]}
                ).status_code
                == 201
            )
            run = api.post("/v1/workflows/ping/runs", params={"wait": 10}, json={}).json()
            assert run["state"] == "succeeded"
            deadline = time.monotonic() + 20
            delivered: dict[str, Any] = {"deliveries": []}
            while time.monotonic() < deadline and len(delivered["deliveries"]) < 2:
                time.sleep(0.05)
                delivered = api.get("/v1/deliveries", params={"state": "delivered"}).json()
        ok = [(h, b) for h, b, s in received if s == 200]
        assert len(ok) == 2, received
        first_headers, _, first_status = received[0]
        assert first_status == 500
        assert any(h["X-Faena-Event-Id"] == first_headers["X-Faena-Event-Id"] for h, _ in ok)
        states = set()
        for headers, body in ok:
            assert (
                verify(
                    secret,
                    headers["X-Faena-Timestamp"],
                    headers["X-Faena-Signature"],
                    body,
                    time.time(),
                )
                is None
            )
            event = json.loads(body)
            assert event["data"]["run_id"] == run["id"] and event["type"] == "run.state"
            states.add(event["data"]["state"])
        assert states == {"running", "succeeded"}
        attempts = sorted(d["attempts"] for d in delivered["deliveries"])
        assert attempts == [1, 2]
    finally:
        receiver.shutdown()
        receiver.server_close()
