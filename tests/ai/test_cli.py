"""``faena llm ...`` against a real server on 127.0.0.1 (CliRunner in-process)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from faena.cli import main
from faena.client import Client
from faena.domain.jobs import DEFAULT_TENANT
from faena.services.orchestrator import JobRequest
from tests.api.live import LiveServer


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    live = LiveServer().start()
    yield live
    live.stop()


@pytest.fixture
def faena(server: LiveServer, tmp_path: Path) -> Any:
    runner = CliRunner(
        env={
            "FAENA_SERVER": server.url,
            "FAENA_API_KEY": server.api_key,
            "FAENA_HOME": str(tmp_path),
            "FAENA_JSON": None,
        }
    )

    def run(*args: str) -> Result:
        return runner.invoke(main, list(args), catch_exceptions=False)

    return run


def test_providers_policies_budgets_and_usage(faena: Any) -> None:
    r = faena(
        "llm", "providers", "set", "local", "--kind", "openai",
        "--base-url", "http://127.0.0.1:11434/v1", "--model", "small=0.5/1.5", "--model", "big",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "provider local: openai at http://127.0.0.1:11434/v1, 2 model(s)"
    listed = faena("llm", "providers", "list")
    assert "local" in listed.stdout and "small, big" in listed.stdout
    shown = json.loads(faena("llm", "providers", "list", "--json").stdout)
    assert shown[0]["models"]["small"] == {"input_per_mtok": 0.5, "output_per_mtok": 1.5}
    r = faena(
        "llm", "policies", "set", "default", "--tier", "local/small@2000", "--tier", "local/big"
    )
    assert r.stdout.strip() == "policy default: local/small -> local/big"
    r = faena(
        "llm", "budgets", "set", "--limit", "5", "--period", "day", "--downgrade-to", "local/small"
    )
    assert r.stdout.strip() == "tenant: $0.0000 of $5.00 per day, then local/small"
    r = faena("llm", "budgets", "set", "--workflow", "intake", "--limit", "1")
    assert "workflow intake" in r.stdout
    assert len(faena("llm", "budgets", "list").stdout.splitlines()) == 2
    usage = faena("llm", "usage", "--group-by", "provider")
    assert usage.exit_code == 0 and "TOTAL" in usage.stdout
    assert faena("llm", "policies", "rm", "default").exit_code == 0
    assert faena("llm", "providers", "rm", "local").exit_code == 0


def test_bad_input_is_one_clear_line(faena: Any) -> None:
    r = faena("llm", "providers", "set", "x", "--kind", "openai", "--base-url", "ftp://nope")
    assert r.exit_code != 0
    assert r.stderr.strip() == "faena: body.base_url must be an http(s) URL"
    r = faena("llm", "providers", "rm", "missing")
    assert r.exit_code != 0 and "LLM provider 'missing' not found" in r.stderr


def test_jobs_list_parent_shows_a_jobs_children(faena: Any, server: LiveServer) -> None:
    assert server.faena is not None
    orchestrator = server.faena.runtime.orchestrator
    (parent,) = server.call(orchestrator.submit(DEFAULT_TENANT, [JobRequest("noop")]))
    children = server.call(
        orchestrator.submit(
            DEFAULT_TENANT,
            [
                JobRequest("noop", parent_id=parent.job.id),
                JobRequest("noop", parent_id=parent.job.id),
            ],
        )
    )
    page = json.loads(faena("jobs", "list", "--parent", parent.job.id, "--json").stdout)
    assert sorted(j["id"] for j in page["jobs"]) == sorted(c.job.id for c in children)
    assert {j["parent_id"] for j in page["jobs"]} == {parent.job.id}
    table = faena("jobs", "list", "--parent", parent.job.id).stdout
    assert all(c.job.id in table for c in children) and parent.job.id not in table
    shown = faena("jobs", "show", children[0].job.id).stdout
    assert f"parent           {parent.job.id}" in shown
    with Client(server.url, api_key=server.api_key) as client:
        listed = client.list_jobs(parent_id=parent.job.id)
    assert {j.parent_id for j in listed.jobs} == {parent.job.id} and len(listed.jobs) == 2
