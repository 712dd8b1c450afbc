"""A list of 10,000 jobs stays responsive: the jobs page shows one page of 50 (server-side
pagination), pages forward by cursor and back, and opens a job by id, whatever the total.

No timed assertion (DESIGN: performance is measured by benchmarks): each step must show within
the browser's default wait (5 s). ``python -m bench.dashboard_jobs`` measures the same walk.
This module has a server of its own (the ``server`` fixture is per module), so the 10,000 jobs
weigh on no other test."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - the dev extra installs it
    if os.environ.get("CI", "").lower() == "true":
        raise
    pytest.skip("playwright is not installed (pip install -e '.[dev]')", allow_module_level=True)

from tests.ui.browser import requests_to, shot, sign_in
from tests.ui.server import UiServer

JOBS = 10_000
PAGE = 50


def seed(server: UiServer, n: int, queue: str) -> None:
    """``n`` jobs in one batch, delayed an hour: they stay in the list, nobody runs them."""
    batch = [{"kind": "noop", "queue": queue, "delay_s": 3600} for _ in range(n)]
    created = server.api("POST", "/v1/jobs/batch", json=batch)
    assert len(created) == n


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlparse(url).query)


def test_a_list_of_10000_jobs_shows_one_page_and_pages_by_cursor(
    page: Any, server: UiServer, screenshots: Path
) -> None:
    seed(server, JOBS, "bulk")
    sign_in(page, server)
    lists = requests_to(page, "/v1/jobs?")
    page.goto(server.url + "/ui/jobs?queue=bulk")
    rows = page.locator("#jobs tbody tr[data-id]")
    expect(rows).to_have_count(PAGE)
    expect(page.locator("#page-info")).to_have_text(f"page 1 · {PAGE} jobs")
    [first] = lists
    assert query_of(first)["limit"] == [str(PAGE)] and "cursor" not in query_of(first)
    assert query_of(first)["queue"] == ["bulk"]

    pages = [rows.evaluate_all("rs => rs.map(r => r.dataset.id)")]
    for number in (2, 3, 4):
        last = pages[-1][-1]
        lists.clear()
        page.click("#next")
        expect(page.locator("#page-info")).to_have_text(f"page {number} · {PAGE} jobs")
        expect(rows).to_have_count(PAGE)
        [request] = lists
        assert query_of(request)["cursor"] == [last]  # the next page starts after the last row
        pages.append(rows.evaluate_all("rs => rs.map(r => r.dataset.id)"))
    seen = [job_id for ids in pages for job_id in ids]
    assert len(set(seen)) == 4 * PAGE  # no job twice across pages
    assert seen == sorted(seen, reverse=True)  # newest first (ids are time-ordered)
    assert page.locator("#jobs tbody tr").count() == PAGE  # the DOM holds one page, never all
    shot(page, screenshots, "jobs-10k")

    page.click("#prev")
    expect(page.locator("#page-info")).to_have_text(f"page 3 · {PAGE} jobs")
    expect(rows.first).to_have_attribute("data-id", pages[2][0])
    page.click("#first")
    expect(page.locator("#page-info")).to_have_text(f"page 1 · {PAGE} jobs")
    expect(rows.first).to_have_attribute("data-id", pages[0][0])
    assert page.locator("#prev").is_disabled()

    # Search by id (the exact id: the API has no prefix search) opens that job.
    wanted = pages[3][17]
    page.fill("#filters input[name=id]", wanted)
    page.press("#filters input[name=id]", "Enter")
    page.wait_for_url(f"**/ui/jobs/{wanted}")
    expect(page.locator("#job-state")).to_have_text("scheduled")
