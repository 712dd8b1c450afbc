"""The dashboard's LLM page in a real browser: budgets with what is spent, usage by model,
providers."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - the dev extra installs it
    if os.environ.get("CI", "").lower() == "true":
        raise
    pytest.skip("playwright is not installed (pip install -e '.[dev]')", allow_module_level=True)

from tests.ui.server import UiServer


@pytest.fixture
def page(browser: Any, server: UiServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    errors: list[str] = []
    opened.on("pageerror", lambda e: errors.append(str(e)))
    yield opened
    context.close()
    assert not errors, errors


def test_the_llm_page_shows_budgets_and_providers(
    page: Any, server: UiServer, screenshots: Path
) -> None:
    provider = {"kind": "anthropic", "base_url": "https://api.anthropic.com",
                "api_key_secret": "ANTHROPIC_KEY", "models": {"claude-haiku": {}}}  # fmt: skip
    server.api("PUT", "/v1/llm/providers/claude", json=provider)
    workflow_budget = {
        "scope": "workflow",
        "name": "commitments",
        "limit_usd": 2,
        "on_exhausted": "downgrade",
        "downgrade_model": "claude/claude-haiku",
    }
    budgets = {"budgets": [{"limit_usd": 20, "period": "month"}, workflow_budget]}
    server.api("PUT", "/v1/llm/budgets", json=budgets)
    page.goto(server.url + "/ui/")
    page.wait_for_url(re.compile(r"/ui/login"))
    page.fill("#key", server.api_key)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/$"))
    page.click("nav a:text('LLM')")
    page.wait_for_url(re.compile(r"/ui/llm$"))
    budgets_table = page.locator("#budgets tbody")
    expect(budgets_table).to_contain_text("workflow commitments")
    expect(budgets_table).to_contain_text("use claude/claude-haiku")
    expect(budgets_table).to_contain_text("100 %")
    expect(page.locator("#providers tbody")).to_contain_text("ANTHROPIC_KEY")
    expect(page.locator("#usage tbody")).to_contain_text("No calls yet.")
    page.screenshot(path=str(screenshots / "llm.png"), full_page=True)
