"""The dashboard in a real browser (Debian's Chromium driven by Playwright) against a real
faena server: sign in, overview, jobs, a live log, cancel, a workflow run's DAG, tenants.

Each test saves a screenshot of its page (see the ``screenshots`` fixture)."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - the dev extra installs it
    if os.environ.get("CI", "").lower() == "true":
        raise
    pytest.skip("playwright is not installed (pip install -e '.[dev]')", allow_module_level=True)

from tests.ui.browser import requests_to
from tests.ui.server import UiServer

TIMEOUT_MS = 10_000


@pytest.fixture
def page(browser: Any, server: UiServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda e: errors.append(str(e)))
    yield opened
    context.close()
    assert not errors, errors  # no JavaScript error on any page


def sign_in(page: Any, server: UiServer, key: str | None = None) -> None:
    page.goto(server.url + "/ui/")
    page.wait_for_url(re.compile(r"/ui/login"))
    page.fill("#key", key or server.api_key)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/$"))


def shot(page: Any, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def stat(page: Any, state: str) -> int:
    return int(page.locator(f".stat[data-state={state}] .n").inner_text())


def test_sign_in_shows_the_overview_counts(page: Any, server: UiServer, screenshots: Path) -> None:
    jobs = [server.submit("noop") for _ in range(3)]
    failing = server.submit("shell", {"command": "echo boom >&2; exit 3"})
    for job in [*jobs, failing]:
        server.wait(job["id"])
    expected = server.api("GET", "/v1/stats")["by_state"]

    sign_in(page, server)
    page.wait_for_selector(".stat[data-state=succeeded]")
    assert stat(page, "succeeded") == expected["succeeded"] >= 3
    assert stat(page, "failed") == expected["failed"] >= 1
    page.wait_for_selector(f"#failures a[href='/ui/jobs/{failing['id']}']")
    page.wait_for_selector("#status.s-ok")
    assert page.locator("#chart svg rect.bar-ok").count() >= 1
    page.wait_for_selector("#live.on")
    shot(page, screenshots, "overview")


def test_the_overview_counts_follow_new_jobs_live(page: Any, server: UiServer) -> None:
    sign_in(page, server)
    page.wait_for_selector("#live.on")
    before = stat(page, "succeeded")
    server.wait(server.submit("noop")["id"])
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while stat(page, "succeeded") <= before:  # pages run under a CSP: no eval for wait_for_*
        assert time.monotonic() < deadline, "the overview did not update"
        page.wait_for_timeout(50)


def test_the_jobs_list_filters_by_state_and_kind(
    page: Any, server: UiServer, screenshots: Path
) -> None:
    server.wait(server.submit("shell", {"command": "exit 1"})["id"])
    server.submit("noop", labels={"team": "ops"})  # no worker offers team=ops: it stays queued
    sign_in(page, server)
    page.goto(server.url + "/ui/jobs")
    page.wait_for_selector("#jobs tbody tr[data-id]")
    page.select_option("select[name=state]", "failed")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r"state=failed"))
    page.wait_for_selector("#jobs tbody tr[data-id]")
    states = page.locator("#jobs tbody td.state").all_inner_texts()
    assert states and set(states) == {"failed"}
    shot(page, screenshots, "jobs-failed")

    page.goto(server.url + "/ui/jobs?kind=noop&label=team%3Dops")
    page.wait_for_selector("#jobs tbody tr[data-id]")
    kinds = page.locator("#jobs tbody tr[data-id] td:nth-child(2)").all_inner_texts()
    assert kinds == ["noop"]
    assert page.input_value("input[name=label]") == "team=ops"

    page.goto(server.url + "/ui/jobs?after=2999-01-01T00%3A00")
    page.wait_for_selector("#jobs td.empty:has-text('No jobs match')")


def test_the_jobs_list_pages_with_cursors(page: Any, server: UiServer) -> None:
    batch = [{"kind": "noop", "queue": "paging"} for _ in range(60)]
    server.api("POST", "/v1/jobs/batch", json=batch)
    sign_in(page, server)
    page.goto(server.url + "/ui/jobs?queue=paging")
    page.wait_for_selector("#jobs tbody tr[data-id]")
    first = page.locator("#jobs tbody tr[data-id]").count()
    assert first == 50
    newest = page.locator("#jobs tbody tr[data-id]").first.get_attribute("data-id")
    assert page.locator("#prev").is_disabled()
    page.click("#next")
    expect(page.locator("#jobs tbody tr[data-id]")).to_have_count(10)
    page.click("#prev")
    expect(page.locator("#jobs tbody tr[data-id]")).to_have_count(50)
    expect(page.locator("#jobs tbody tr[data-id]").first).to_have_attribute("data-id", newest)
    assert page.locator("#prev").is_disabled()
    page.click("#next")
    expect(page.locator("#jobs tbody tr[data-id]")).to_have_count(10)
    page.click("#first")
    expect(page.locator("#jobs tbody tr[data-id]")).to_have_count(50)


def submit_through_the_form(page: Any, kind: str, payload: str, **fields: str) -> None:
    page.click("#new-job summary")
    page.fill("#submit input[name=kind]", kind)
    page.fill("#submit textarea[name=payload]", payload)
    for name, value in fields.items():
        page.fill(f"#submit input[name={name}]", value)
    page.click("#submit button[type=submit]")


def test_a_job_submitted_on_the_jobs_page_succeeds_with_its_log_live(
    page: Any, server: UiServer, screenshots: Path
) -> None:
    """Sign in, submit a job through the dashboard, watch it reach succeeded and its log
    lines appear while it runs."""
    command = "for i in 1 2 3 4; do echo line $i; sleep 0.5; done; echo oops >&2"
    sign_in(page, server)
    page.goto(server.url + "/ui/jobs")
    submit_through_the_form(
        page, "shell", json.dumps({"command": command}), queue="ui-submit", priority="7"
    )
    page.wait_for_url(re.compile(r"/ui/jobs/[0-9a-f-]{36}$"))
    job = server.api("GET", "/v1/jobs/" + page.url.rsplit("/", 1)[-1])
    assert (job["kind"], job["queue"], job["priority"]) == ("shell", "ui-submit", 7)
    assert job["payload"] == {"command": command}
    page.wait_for_selector("#log span:has-text('line 1')")
    # the first line is on screen while the job still runs: it streamed in live
    assert "line 4" not in page.inner_text("#log")
    assert page.inner_text("#job-state") == "running"
    page.wait_for_selector("#job-state.s-succeeded")
    page.wait_for_selector("#log span.stderr:has-text('oops')")
    log = page.inner_text("#log")
    assert [f"line {i}" in log for i in range(1, 5)] == [True] * 4
    assert page.locator("#cancel").is_hidden()
    shot(page, screenshots, "job")


def test_the_submit_form_shows_what_is_wrong_and_submits_nothing_then(
    page: Any, server: UiServer, screenshots: Path
) -> None:
    sign_in(page, server)
    page.goto(server.url + "/ui/jobs")
    posts = requests_to(page, "/v1/jobs")
    submit_through_the_form(page, "noop", '{"unclosed": ')
    expect(page.locator("#submit-error")).to_contain_text("Payload is not valid JSON")
    expect(page.locator("#submit textarea[name=payload]")).to_have_attribute("aria-invalid", "true")
    page.fill("#submit textarea[name=payload]", "")
    page.fill("#submit input[name=priority]", "1.5")
    page.click("#submit button[type=submit]")
    expect(page.locator("#submit-error")).to_contain_text("whole number")
    page.fill("#submit input[name=priority]", "0")
    page.fill("#submit input[name=kind]", " ")
    page.click("#submit button[type=submit]")
    expect(page.locator("#submit-error")).to_have_text("Kind is required.")
    assert [u for u in posts if "/v1/jobs?" not in u] == []  # refused before any request
    # What only the server knows (here: no worker serves the kind) comes back as its message.
    page.fill("#submit input[name=kind]", "no-such-kind")
    page.click("#submit button[type=submit]")
    expect(page.locator("#submit-error")).to_contain_text("no-such-kind")
    assert "/ui/jobs" in page.url and "/ui/jobs/" not in page.url
    shot(page, screenshots, "jobs-submit-error")


def test_the_cancel_button_cancels_a_running_job(page: Any, server: UiServer) -> None:
    sign_in(page, server)
    job = server.submit("sleep", {"seconds": 30})
    page.goto(f"{server.url}/ui/jobs/{job['id']}")
    page.wait_for_selector("#job-state.s-running")
    page.click("#cancel")
    page.wait_for_selector("#job-state.s-cancelled")
    page.wait_for_selector("#retry:visible")
    assert server.api("GET", f"/v1/jobs/{job['id']}")["state"] == "cancelled"


def test_the_retry_button_queues_a_failed_job_again(page: Any, server: UiServer) -> None:
    job = server.submit("shell", {"command": "exit 4"})
    server.wait(job["id"])
    sign_in(page, server)
    page.goto(f"{server.url}/ui/jobs/{job['id']}")
    page.wait_for_selector("#job-state.s-failed")
    page.click("#retry")
    page.wait_for_selector("#flash:has-text('queued again')")
    deadline = time.monotonic() + 10
    while server.api("GET", f"/v1/jobs/{job['id']}")["attempts"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_workflow_run_draws_its_dag_with_step_states(
    page: Any, server: UiServer, screenshots: Path
) -> None:
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    if "/v1/runs/{run_id}" not in paths:
        pytest.skip("this faena has no workflows API yet")
    flow = {
        "steps": [
            {"id": "fetch", "kind": "noop"},
            {"id": "parse", "kind": "shell", "needs": ["fetch"], "with": {"command": "echo ok"}},
            {"id": "check", "kind": "noop", "needs": ["fetch"]},
            {"id": "report", "kind": "noop", "needs": ["parse", "check"]},
        ]
    }
    server.api("PUT", "/v1/workflows/intake", json=flow)
    run = server.api("POST", "/v1/workflows/intake/runs?wait=10", json={})
    sign_in(page, server)
    page.goto(f"{server.url}/ui/runs/{run['id']}")
    page.wait_for_selector("#run-state.s-succeeded")
    nodes = page.locator("#dag g.node")
    expect(nodes).to_have_count(4)
    assert [n.get_attribute("data-state") for n in nodes.all()] == ["succeeded"] * 4
    assert page.locator("#dag path.edge").count() == 4
    # Each step's logs, inline: the shell step's output is there without leaving the page.
    parse = page.locator("#step-logs details[data-step=parse]")
    expect(parse).to_have_count(1)
    parse.locator("summary").click()
    expect(parse.locator("pre.log")).to_contain_text("ok")
    expect(page.locator("#step-logs details")).to_have_count(4)
    shot(page, screenshots, "run")
    page.goto(server.url + "/ui/workflows")
    page.wait_for_selector("#workflows a:has-text('intake')")
    shot(page, screenshots, "workflows")
    page.click("#workflows a:has-text('intake')")
    expect(page.locator("#dag g.node")).to_have_count(4)
    page.wait_for_selector(f"#runs a[href='/ui/runs/{run['id']}']")
    shot(page, screenshots, "workflow")


def test_the_workers_page_lists_the_local_pool(
    page: Any, server: UiServer, screenshots: Path
) -> None:
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    sign_in(page, server)
    if "/v1/workers" not in paths:
        assert page.locator("nav a[href='/ui/workers']").is_hidden()
        pytest.skip("this faena has no workers API yet")
    page.click("nav a[href='/ui/workers']")
    page.wait_for_selector("#workers tbody tr td.mono")
    shot(page, screenshots, "workers")


def test_another_tenant_sees_none_of_the_first_tenants_jobs(
    page: Any, server: UiServer, screenshots: Path
) -> None:
    mine = server.submit("noop")
    server.wait(mine["id"])
    sign_in(page, server, server.other_key)
    page.wait_for_selector(".stat[data-state=succeeded]")
    assert stat(page, "succeeded") == 0
    page.wait_for_selector("#tenant:has-text('tenant-b')")
    page.goto(server.url + "/ui/jobs")
    page.wait_for_selector("#jobs td.empty")
    page.goto(f"{server.url}/ui/jobs/{mine['id']}")
    page.wait_for_selector("#flash:has-text('No job')")
    shot(page, screenshots, "other-tenant")


def test_another_tenant_sees_none_of_the_first_tenants_runs(
    page: Any, server: UiServer, screenshots: Path
) -> None:
    flow = {"steps": [{"id": "only", "kind": "noop"}]}
    server.api("PUT", "/v1/workflows/private-flow", json=flow)
    run = server.api("POST", "/v1/workflows/private-flow/runs?wait=10", json={})
    assert run["state"] == "succeeded"
    sign_in(page, server, server.other_key)
    page.wait_for_selector("#tenant:has-text('tenant-b')")
    page.goto(server.url + "/ui/workflows")
    page.wait_for_selector("#workflows td.empty")
    page.wait_for_selector("#runs td.empty")
    assert page.locator("text=private-flow").count() == 0
    page.goto(f"{server.url}/ui/runs/{run['id']}")
    page.wait_for_selector("#flash:has-text('no run')")
    assert page.locator("#dag g.node").count() == 0
    page.goto(server.url + "/ui/workflows/private-flow")
    page.wait_for_selector("#flash:has-text('no workflow')")
    shot(page, screenshots, "other-tenant-runs")


def test_the_audit_page_lists_filters_and_pages_the_tenants_entries(
    page: Any, server: UiServer, screenshots: Path
) -> None:
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    sign_in(page, server)
    if "/v1/audit" not in paths:
        page.goto(server.url + "/ui/audit")
        page.wait_for_selector("#audit td.empty:has-text('Not available')")
        pytest.skip("this faena has no audit API yet")
    for _ in range(3):
        server.submit("noop")
    httpx.post(server.url + "/v1/jobs", headers={"Authorization": "Bearer fk_nope"}, json={})
    page.click("nav a[href='/ui/audit']")
    page.wait_for_selector("#audit tbody tr[data-outcome]")
    expect(page.locator("#audit tbody td:has-text('jobs.submit')").first).to_be_visible()
    page.fill("#filters input[name=action]", "jobs.submit")
    page.select_option("#filters select[name=outcome]", "ok")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r"action=jobs.submit"))
    rows = page.locator("#audit tbody tr[data-outcome]")
    expect(rows.first).to_be_visible()
    assert rows.count() >= 3
    assert set(rows.evaluate_all("rs => rs.map(r => r.dataset.outcome)")) == {"ok"}
    shot(page, screenshots, "audit")


def test_the_audit_page_says_when_the_key_may_not_read_it(page: Any, server: UiServer) -> None:
    sign_in(page, server, server.other_key)  # no audit:read scope
    page.goto(server.url + "/ui/audit")
    page.wait_for_selector("#audit td.empty:has-text('Not available')")


def test_a_wrong_key_is_refused_at_sign_in(page: Any, server: UiServer, screenshots: Path) -> None:
    page.goto(server.url + "/ui/login")
    page.fill("#key", "fk_definitely_not_a_valid_key_000000")
    page.click("button[type=submit]")
    page.wait_for_selector("#login-error:has-text('not valid')")
    shot(page, screenshots, "login")
