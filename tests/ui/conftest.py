"""Fixtures of the dashboard tests: one real faena server per module, and Chromium.

Browser tests need Debian's Chromium (``apt-get install chromium``) and Playwright for Python
(the dev extra). Without Chromium they skip locally and fail under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.server import UiServer

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PAGE_TIMEOUT_MS = 10_000
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server() -> Iterator[UiServer]:
    live = UiServer().start()
    yield live
    live.stop()


def _missing(why: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why}; CI must run the browser tests (see .ci/run)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where each page's screenshot goes, a test artefact CI keeps: ``$FAENA_UI_SCREENSHOTS``
    (emptied first), else ``test-artifacts/screenshots/`` at the repository root (git-ignored;
    each test overwrites its own files, so runs of single test files add up)."""
    chosen = os.environ.get("FAENA_UI_SCREENSHOTS")
    folder = Path(chosen) if chosen else SCREENSHOTS
    if folder.exists() and chosen:
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(browser: Any, server: UiServer) -> Iterator[Any]:
    """A fresh browser tab (its own context: no key carried over); fails the test on any
    JavaScript error on the page."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(PAGE_TIMEOUT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda e: errors.append(str(e)))
    yield opened
    context.close()
    assert not errors, errors
