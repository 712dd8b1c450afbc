"""``POST /v1/ask`` with the real embedding model: a sentence picks the workflow that fits and
fills its inputs; with ``execute`` it starts the run; an LLM, when configured, confirms."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from faena.bootstrap import Runtime, build_runtime
from faena.config import Settings
from faena.domain.jobs import DEFAULT_TENANT
from faena.domain.llm import ModelPrice, ProviderConfig
from faena.worker.registry import TaskRegistry, task
from tests.ai.agent_support import close_providers
from tests.ai.providers import FakeProvider, Reply

registry = TaskRegistry()
ADMIN_KEY = "fk_test_admin_key_for_the_ask_tests"

WORKFLOWS = {
    "sales-report": """
name: sales-report
description: Build the monthly sales report and send it to a notes page or a mailbox.
inputs:
  month: {type: string, description: the month of the report, like 2026-10}
  destination: {type: string, default: notes, description: where to send it}
steps:
  - id: build
    kind: record
    with: {what: "sales {{ inputs.month }} to {{ inputs.destination }}"}
""",
    "invoice-intake": """
name: invoice-intake
description: Read a supplier invoice PDF, extract the total and book it in accounting.
inputs:
  document_url: {type: string, description: the URL of the invoice PDF}
steps:
  - id: read
    kind: record
    with: {what: "{{ inputs.document_url }}"}
""",
    "onboard-employee": """
name: onboard-employee
description: Create accounts and send a welcome email to a new hire.
inputs:
  email: string
steps:
  - id: create
    kind: record
    with: {what: "{{ inputs.email }}"}
""",
}


@task(registry=registry)
async def record(what: str) -> str:
    return what


@pytest.fixture(params=["memory", "sqlite"])
async def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Runtime]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/faena.db"
    runtime = build_runtime(
        Settings(
            database_url=url,
            home=tmp_path,
            workers=4,
            bootstrap_key=ADMIN_KEY,
            rate_limits=False,
            shutdown_grace_s=2.0,
            retention_days=0,
        ),
        registry=registry,
    )
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()
        await close_providers(runtime)


@pytest.fixture
async def http(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(runtime.app()),
        base_url="http://faena",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ) as client:
        for name, text in WORKFLOWS.items():
            response = await client.put(
                f"/v1/workflows/{name}",
                content=text,
                headers={"Content-Type": "application/yaml"},
            )
            assert response.status_code == 201, response.text
        yield client


async def ask(http: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await http.post("/v1/ask", json=body)


async def test_a_sentence_picks_the_workflow_that_fits(http: httpx.AsyncClient) -> None:
    response = await ask(http, text="send last month's sales report to the meeting notes")
    assert response.status_code == 200, response.text
    plan = response.json()
    assert plan["workflow"] == "sales-report"
    assert plan["confirmed_by"] == "embedding"
    assert plan["candidates"][0]["workflow"] == "sales-report"
    assert plan["similarity"] > plan["candidates"][1]["similarity"]
    assert plan["inputs"] == {"destination": "notes"}  # the default
    assert plan["missing_inputs"] == ["month"]
    assert plan["executed"] is False and plan["run"] is None


async def test_other_sentences_pick_other_workflows(http: httpx.AsyncClient) -> None:
    invoice = await ask(http, text="book this supplier invoice: document_url=https://x.test/a.pdf")
    assert invoice.json()["workflow"] == "invoice-intake"
    assert invoice.json()["inputs"] == {"document_url": "https://x.test/a.pdf"}
    hire = await ask(http, text="we hired someone, set up their accounts and welcome them")
    assert hire.json()["workflow"] == "onboard-employee"


async def test_execute_starts_the_run(http: httpx.AsyncClient) -> None:
    response = await ask(
        http,
        text="send the sales report month: 2026-10 to the notes",
        execute=True,
    )
    assert response.status_code == 201, response.text
    plan = response.json()
    assert plan["inputs"] == {"month": "2026-10", "destination": "notes"}
    run_id = plan["run"]["id"]
    run = (await http.get(f"/v1/runs/{run_id}", params={"wait": 20})).json()
    assert run["state"] == "succeeded"
    assert run["workflow"] == "sales-report"


async def test_execute_with_missing_inputs_is_refused(http: httpx.AsyncClient) -> None:
    response = await ask(http, text="send the sales report to the notes", execute=True)
    assert response.status_code == 422
    assert "missing inputs month" in response.json()["error"]["message"]
    given = await ask(
        http, text="send the sales report to the notes", execute=True, inputs={"month": "2026-09"}
    )
    assert given.status_code == 201, given.text


async def test_nothing_close_enough_is_a_clear_422(http: httpx.AsyncClient) -> None:
    response = await ask(http, text="what is the airspeed velocity of an unladen swallow")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "no_match"


@pytest.mark.parametrize(
    "body",
    [{}, {"text": ""}, {"text": "x" * 2001}, {"text": "hi", "execute": "yes"}, {"text": 3}],
)
async def test_bad_bodies_are_422(http: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await http.post("/v1/ask", json=body)
    assert response.status_code == 422
    assert set(response.json()["error"]) >= {"code", "message"}


async def test_execute_needs_the_write_scope(runtime: Runtime, http: httpx.AsyncClient) -> None:
    reader = await runtime.keys.create(DEFAULT_TENANT, "reader", ["workflows:read"])
    headers = {"Authorization": f"Bearer {reader.plaintext}"}
    plan = await http.post("/v1/ask", json={"text": "sales report"}, headers=headers)
    assert plan.status_code == 200
    refused = await http.post(
        "/v1/ask", json={"text": "sales report", "execute": True}, headers=headers
    )
    assert refused.status_code == 403


async def test_an_llm_confirms_the_pick_and_fills_inputs(
    runtime: Runtime, http: httpx.AsyncClient, fake: FakeProvider
) -> None:
    await runtime.store.put_llm_provider(  # type: ignore[attr-defined]
        ProviderConfig(
            DEFAULT_TENANT,
            "fake",
            "openai",
            fake.openai_url,
            models={"m": ModelPrice()},
            max_retries=0,
        )
    )
    fake.script(
        Reply(text='{"workflow": "sales-report", "inputs": {"month": "2026-10", "bogus": 1}}')
    )
    response = await ask(http, text="send last month's sales report to the meeting notes")
    assert response.status_code == 200, response.text
    plan = response.json()
    assert plan["confirmed_by"] == "llm"
    assert plan["inputs"] == {"month": "2026-10", "destination": "notes"}
    prompt = fake.requests[0]["messages"][-1]["content"]
    assert "sales report" in prompt and "Request: send last month" in prompt


async def test_an_llm_saying_none_is_no_match(
    runtime: Runtime, http: httpx.AsyncClient, fake: FakeProvider
) -> None:
    await runtime.store.put_llm_provider(  # type: ignore[attr-defined]
        ProviderConfig(
            DEFAULT_TENANT,
            "fake",
            "openai",
            fake.openai_url,
            models={"m": ModelPrice()},
            max_retries=0,
        )
    )
    fake.script(Reply(text='{"workflow": "none", "inputs": {}}'))
    response = await ask(http, text="sales report please")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "no_match"


async def test_cache_hit_rates_are_on_metrics(runtime: Runtime, http: httpx.AsyncClient) -> None:
    cache = runtime.semantic_cache
    assert cache is not None
    await cache.put(DEFAULT_TENANT, "m", "What is the capital of France?", {"a": "Paris"})
    assert await cache.get(DEFAULT_TENANT, "m", "what is the capital of france?") is not None
    assert await cache.get(DEFAULT_TENANT, "m", "How do I bake bread?") is None
    text = (await http.get("/metrics")).text
    assert 'faena_semantic_cache_hit_ratio{tenant="default"} 0.5' in text
    assert 'faena_semantic_cache_lookups{result="exact",tenant="default"} 1.0' in text
