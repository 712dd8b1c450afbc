"""The dashboard shows an agent's tool calls as child jobs: the job page lists a job's children
(and links a child to its parent), the run page lists them under the agent's step."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - the dev extra installs it
    if os.environ.get("CI", "").lower() == "true":
        raise
    pytest.skip("playwright is not installed (pip install -e '.[dev]')", allow_module_level=True)

from faena.domain.jobs import DEFAULT_TENANT
from faena.domain.llm import ModelPrice, ProviderConfig
from faena.services.orchestrator import JobRequest
from tests.ai.providers import FakeProvider, Reply
from tests.ui.server import UiServer

WORKFLOW = """
name: helper
steps:
  - id: think
    kind: agent
    with:
      prompt: do the thing
      model: fake/m
      tools: [{kind: noop, description: does nothing}]
"""


@pytest.fixture
def page(browser: Any, server: UiServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    errors: list[str] = []
    opened.on("pageerror", lambda e: errors.append(str(e)))
    opened.goto(server.url + "/ui/login")
    opened.fill("#key", server.api_key)
    opened.click("button[type=submit]")
    opened.wait_for_url(re.compile(r"/ui/$"))
    yield opened
    context.close()
    assert not errors, errors


def test_the_job_page_lists_its_children_and_links_a_child_to_its_parent(
    page: Any, server: UiServer
) -> None:
    assert server.faena is not None
    orchestrator = server.faena.runtime.orchestrator
    (parent,) = server.call(orchestrator.submit(DEFAULT_TENANT, [JobRequest("noop")]))
    kids = server.call(
        orchestrator.submit(
            DEFAULT_TENANT,
            [JobRequest("noop", parent_id=parent.job.id) for _ in range(2)],
        )
    )
    page.goto(f"{server.url}/ui/jobs/{parent.job.id}")
    rows = page.locator("#children tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#children-card")).to_be_visible()
    page.locator("#children tbody a").first.click()
    page.wait_for_url(re.compile(f"/ui/jobs/{kids[0].job.id}$"))
    expect(page.locator("#details")).to_contain_text("parent")
    expect(page.locator("#children-card")).to_be_hidden()  # a child with no children
    page.locator("#details a.id").click()
    page.wait_for_url(re.compile(f"/ui/jobs/{parent.job.id}$"))


def test_the_run_page_lists_the_agent_steps_child_jobs(page: Any, server: UiServer) -> None:
    assert server.faena is not None
    fake: FakeProvider = server.call(FakeProvider().start())
    try:
        store: Any = server.faena.runtime.store
        config = ProviderConfig(
            DEFAULT_TENANT, "fake", "openai", fake.openai_url, models={"m": ModelPrice()}
        )
        server.call(store.put_llm_provider(config))
        fake.script(Reply(tool_calls=[("noop", {}), ("noop", {})]), Reply(text="done"))
        put = httpx.put(
            server.url + "/v1/workflows/helper",
            content=WORKFLOW,
            headers={"Authorization": f"Bearer {server.api_key}", "Content-Type": "text/yaml"},
        )
        assert put.status_code == 201, put.text
        run = server.api("POST", "/v1/workflows/helper/runs", json={})
        done = server.api("GET", f"/v1/runs/{run['id']}?wait=8")
        assert done["state"] == "succeeded", done
        page.goto(f"{server.url}/ui/runs/{run['id']}")
        children = page.locator("#steps .children")
        expect(children).to_contain_text("child jobs:")
        expect(children.locator("a.id")).to_have_count(2)
        expect(children).to_contain_text("succeeded")
    finally:
        server.call(fake.stop())
