"""The dashboard's jobs list with many jobs: how long the browser takes to show a page.

    python -m bench.dashboard_jobs [--jobs 10000] [--pages 20] [--database-url URL]

Starts ``faena up`` (SQLite by default, or ``--database-url``), submits ``--jobs`` jobs in
batches of 1,000 (delayed an hour, so they stay listed and nothing runs them), then in Debian's
Chromium (Playwright) opens ``/ui/jobs`` and pages forward ``--pages`` times and back once.
Prints one JSON line: the time to the first page shown (navigation to 50 rows), and the median
and maximum time per page forward and back (click to the next page's rows shown), besides the
API's own ``GET /v1/jobs`` latency for the first and a deep page. The test suite asserts the
behaviour (``tests/ui/test_jobs_scale.py``); the figures come from here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import httpx
from bench.faena_embedded import FaenaServer, bench_lock

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
BATCH = 1000
PAGE = 50


def seed(api: httpx.Client, jobs: int) -> float:
    started = time.perf_counter()
    for start in range(0, jobs, BATCH):
        n = min(BATCH, jobs - start)
        batch = [{"kind": "noop", "queue": "bulk", "delay_s": 3600} for _ in range(n)]
        api.post("/v1/jobs/batch", json=batch).raise_for_status()
    return time.perf_counter() - started


def api_pages(api: httpx.Client, pages: int) -> dict[str, float]:
    """``GET /v1/jobs`` for the first page, and for the page ``pages`` deep by cursor."""
    cursor = None
    first = deep = 0.0
    for number in range(pages + 1):
        params: dict[str, Any] = {"queue": "bulk", "limit": PAGE}
        if cursor:
            params["cursor"] = cursor
        started = time.perf_counter()
        body = api.get("/v1/jobs", params=params).raise_for_status().json()
        took = time.perf_counter() - started
        first = took if number == 0 else first
        deep = took
        cursor = body["next_cursor"]
    return {"api_first_page_ms": first * 1000, "api_deep_page_ms": deep * 1000}


def browse(url: str, key: str, pages: int) -> dict[str, float]:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(url + "/ui/login")
        page.fill("#key", key)
        page.click("button[type=submit]")
        page.wait_for_url("**/ui/")
        info = page.locator("#page-info")
        started = time.perf_counter()
        page.goto(url + "/ui/jobs?queue=bulk")
        expect(info).to_have_text(f"page 1 · {PAGE} jobs", timeout=60_000)
        first = time.perf_counter() - started
        forward = []
        for number in range(2, pages + 2):
            started = time.perf_counter()
            page.click("#next")
            expect(info).to_have_text(f"page {number} · {PAGE} jobs", timeout=60_000)
            forward.append(time.perf_counter() - started)
        started = time.perf_counter()
        page.click("#prev")
        expect(info).to_have_text(f"page {pages} · {PAGE} jobs", timeout=60_000)
        back = time.perf_counter() - started
        browser.close()
    return {
        "first_page_ms": first * 1000,
        "page_forward_median_ms": statistics.median(forward) * 1000,
        "page_forward_max_ms": max(forward) * 1000,
        "page_back_ms": back * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    bench_lock()
    server = FaenaServer(args=["--workers", "1"], database_url=args.database_url).start()
    try:
        headers = {"Authorization": f"Bearer {server.key}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=120) as api:
            seed_s = seed(api, args.jobs)
            line: dict[str, Any] = {
                "benchmark": "dashboard_jobs",
                "jobs": args.jobs,
                "pages": args.pages,
                "database": args.database_url or "sqlite",
                "seed_s": seed_s,
                **api_pages(api, args.pages),
            }
        line.update(browse(server.url, server.key, args.pages))
    finally:
        server.stop()
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
