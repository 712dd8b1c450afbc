"""Pages that follow ``WS /v1/events`` in a real browser: what changes on the server shows up
without reloading the page (and, for the workers page, without polling): workers, a workflow,
a run while it runs, the audit log."""

from __future__ import annotations

import os
import time
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

from faena.domain.workers import Capacity, WorkerInfo, WorkerKind
from tests.ui.browser import navigations, requests_to, shot, sign_in
from tests.ui.server import UiServer


def has_api(server: UiServer, path: str) -> bool:
    return path in httpx.get(server.url + "/openapi.json").json()["paths"]


def test_the_workers_page_follows_heartbeats_and_connections_live(
    page: Any, server: UiServer, screenshots: Path
) -> None:
    if not has_api(server, "/v1/workers"):
        pytest.skip("this faena has no workers API yet")
    sign_in(page, server)
    moved = navigations(page)
    page.goto(server.url + "/ui/workers")
    page.wait_for_selector("#live.on")
    pool = page.locator("#workers tbody tr[data-id]").first
    expect(pool).to_be_visible()
    # The local pool's record is refreshed every 3 s: its row changes in place, by the event,
    # not by reading the list again.
    expect(pool).to_have_attribute("data-beats", "1", timeout=10_000)
    reads = requests_to(page, "/v1/workers")
    expect(pool).to_have_attribute("data-beats", "2", timeout=10_000)
    assert reads == []

    registry = server.faena.runtime.workers_plane.registry  # type: ignore[union-attr]
    now = time.time()
    edge = WorkerInfo(
        id="edge-live-1",
        kind=WorkerKind.REMOTE,
        kinds=frozenset({"noop"}),
        labels={"zone": "eu"},
        capacity=Capacity(slots=4),
        version="test",
        host="edge-host",
        server="test",
        started_at=now,
        last_heartbeat=now,
    )
    server.call(registry.save(edge))  # as the worker manager records a worker that connects
    row = page.locator("#workers tbody tr[data-id='edge-live-1']")
    expect(row.locator(".state")).to_have_text("connected")
    expect(row).to_contain_text("zone=eu")
    shot(page, screenshots, "workers-live")
    server.call(registry.disconnect(["edge-live-1"]))
    expect(row.locator(".state")).to_have_text("disconnected")
    assert moved == [server.url + "/ui/workers"]  # one page load, never reloaded


def test_the_workflow_page_shows_new_runs_and_versions_live(
    page: Any, server: UiServer, screenshots: Path
) -> None:
    if not has_api(server, "/v1/runs/{run_id}"):
        pytest.skip("this faena has no workflows API yet")
    flow = {"steps": [{"id": "only", "kind": "noop"}]}
    server.api("PUT", "/v1/workflows/live-flow", json=flow)
    sign_in(page, server)
    moved = navigations(page)
    page.goto(server.url + "/ui/workflows/live-flow")
    page.wait_for_selector("#live.on")
    page.wait_for_selector("#runs td.empty")
    run = server.api("POST", "/v1/workflows/live-flow/runs?wait=10", json={})
    expect(page.locator(f"#runs tr[data-run='{run['id']}']")).to_have_attribute(
        "data-state", "succeeded"
    )
    two = {"steps": [{"id": "first", "kind": "noop"}, {"id": "then", "kind": "noop",
                                                       "needs": ["first"]}]}  # fmt: skip
    server.api("PUT", "/v1/workflows/live-flow", json=two)
    expect(page.locator("#versions tbody tr")).to_have_count(2)
    expect(page.locator("#dag g.node")).to_have_count(2)
    shot(page, screenshots, "workflow-live")
    assert moved == [server.url + "/ui/workflows/live-flow"]


def test_a_run_page_opened_while_it_runs_shows_its_steps_change_live(
    page: Any, server: UiServer, screenshots: Path, tmp_path: Path
) -> None:
    """The second step waits for a file the test creates: the page is looked at while the run
    is running, then sees the step (and the run) finish without a reload."""
    if not has_api(server, "/v1/runs/{run_id}"):
        pytest.skip("this faena has no workflows API yet")
    release = tmp_path / "release"
    command = f"while [ ! -e '{release}' ]; do sleep 0.05; done; echo released"
    flow = {
        "steps": [
            {"id": "fetch", "kind": "noop"},
            {"id": "hold", "kind": "shell", "needs": ["fetch"], "with": {"command": command}},
            {"id": "report", "kind": "noop", "needs": ["hold"]},
        ]
    }
    server.api("PUT", "/v1/workflows/held-flow", json=flow)
    run = server.api("POST", "/v1/workflows/held-flow/runs", json={})
    sign_in(page, server)
    moved = navigations(page)
    page.goto(f"{server.url}/ui/runs/{run['id']}")
    node = lambda step: page.locator(f"#dag g.node[data-step={step}]")  # noqa: E731
    try:
        expect(node("hold")).to_have_attribute("data-state", "running")
        expect(page.locator("#run-state")).to_have_text("running")
        expect(node("fetch")).to_have_attribute("data-state", "succeeded")
        assert node("report").get_attribute("data-state") not in {"running", "succeeded"}
        assert page.locator("#cancel").is_visible()
        shot(page, screenshots, "run-running")
    finally:
        release.touch()  # whatever happened above, the run may end
    expect(page.locator("#run-state")).to_have_text("succeeded")
    for step in ("fetch", "hold", "report"):
        expect(node(step)).to_have_attribute("data-state", "succeeded")
    expect(page.locator("#cancel")).to_be_hidden()
    hold = page.locator("#step-logs details[data-step=hold]")
    hold.locator("summary").click()
    expect(hold.locator("pre.log")).to_contain_text("released")
    shot(page, screenshots, "run-finished")
    assert moved == [f"{server.url}/ui/runs/{run['id']}"]


def test_the_audit_page_shows_new_entries_live(
    page: Any, server: UiServer, screenshots: Path
) -> None:
    if not has_api(server, "/v1/audit"):
        pytest.skip("this faena has no audit API yet")
    job = server.submit("sleep", {"seconds": 30})
    sign_in(page, server)
    moved = navigations(page)
    page.goto(server.url + "/ui/audit")
    page.wait_for_selector("#live.on")
    page.wait_for_selector("#audit tbody tr[data-outcome]")
    cancelled = page.locator(
        f"#audit tbody tr:has(td:text-is('jobs.cancel')):has(td:text-is('{job['id']}'))"
    )
    expect(cancelled).to_have_count(0)
    server.api("POST", f"/v1/jobs/{job['id']}/cancel")  # audited as jobs.cancel
    expect(cancelled).to_have_count(1)
    shot(page, screenshots, "audit-live")
    assert moved == [server.url + "/ui/audit"]
