"""``/v1/mail/watches`` over HTTP and ``faena mail watch`` on the command line."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from faena.bootstrap import Runtime
from faena.cli import main
from faena.domain.jobs import DEFAULT_TENANT
from tests.api.live import LiveServer
from tests.mail.conftest import ADMIN_KEY, INTAKE, RuntimeFactory, eventually, put_secret
from tests.mail.servers import PASSWORD, Dovecot, message

WATCH = {
    "name": "invoices",
    "host": "127.0.0.1",
    "port": 1,
    "security": "none",
    "username": "bot",
    "password_secret": "IMAP_PASSWORD",
    "workflow": "intake",
}


@pytest.fixture
async def runtime(make_runtime: RuntimeFactory, tmp_path: Path) -> Runtime:
    found = await make_runtime(f"sqlite:///{tmp_path}/api.db")
    assert found.workflows is not None
    await found.workflows.apply_text(DEFAULT_TENANT, INTAKE)
    await found.workflows.apply_text(
        DEFAULT_TENANT, "name: no-input\nsteps:\n  - {id: a, kind: noop}\n"
    )
    return found


@pytest.fixture
async def http(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(runtime.app()),
        base_url="http://faena",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ) as client:
        yield client


async def _key(http: httpx.AsyncClient, *scopes: str) -> dict[str, str]:
    response = await http.post("/v1/keys", json={"name": "k", "scopes": list(scopes)})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}"}


async def test_add_list_show_and_remove_a_watch(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/mail/watches", json=WATCH)
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == "/v1/mail/watches/invoices"
    assert body["password_secret"] == "IMAP_PASSWORD" and "password" not in body
    assert body["state"]["last_uid"] == 0

    listed = (await http.get("/v1/mail/watches")).json()["watches"]
    assert [w["name"] for w in listed] == ["invoices"]
    assert (await http.get("/v1/mail/watches/invoices")).json()["id"] == body["id"]
    assert (await http.get("/v1/mail/watches/invoices/messages")).json() == {"messages": []}

    deleted = await http.delete("/v1/mail/watches/invoices")
    assert deleted.status_code == 200 and deleted.json() == {"name": "invoices", "deleted": True}
    missing = await http.get("/v1/mail/watches/invoices")
    assert missing.status_code == 404
    error = missing.json()["error"]
    assert (error["code"], error["message"]) == ("not_found", "no mail watch 'invoices'")


@pytest.mark.parametrize(
    ("change", "status", "fragment"),
    [
        ({"host": None}, 422, "'host' is required"),
        ({"port": 70000}, 422, "'port'"),
        ({"security": "tls"}, 422, "'security' must be one of"),
        ({"password_secret": "a b"}, 422, "secret name"),
        ({"workflow": "nope"}, 422, "no workflow 'nope'"),
        ({"workflow": "no-input"}, 422, "must declare an input 'message'"),
        ({"action": "move"}, 422, "'move_to' is required"),
        (
            {"rules": [{"match": {"subject": "("}, "workflow": "intake"}]},
            422,
            "not a valid pattern",
        ),
        ({"folder": 'a"b'}, 422, "'folder'"),
        ({"password": "plain"}, 422, "unknown field 'password'"),
    ],
)
async def test_a_bad_watch_is_refused_with_the_field_named(
    http: httpx.AsyncClient, change: dict[str, Any], status: int, fragment: str
) -> None:
    spec = {k: v for k, v in {**WATCH, **change}.items() if v is not None}
    response = await http.post("/v1/mail/watches", json=spec)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]["message"]


async def test_a_duplicate_name_is_a_conflict_and_malformed_json_a_4xx(
    http: httpx.AsyncClient,
) -> None:
    assert (await http.post("/v1/mail/watches", json=WATCH)).status_code == 201
    again = await http.post("/v1/mail/watches", json=WATCH)
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    broken = await http.post(
        "/v1/mail/watches", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert 400 <= broken.status_code < 500
    assert (await http.post("/v1/mail/watches", json=[1])).status_code == 422
    bad_query = await http.get("/v1/mail/watches/invoices/messages?state=lost")
    assert bad_query.status_code == 422


async def test_scopes_and_tenants_are_enforced(http: httpx.AsyncClient) -> None:
    reader = await _key(http, "workflows:read")
    assert (await http.post("/v1/mail/watches", json=WATCH, headers=reader)).status_code == 403
    assert (await http.get("/v1/mail/watches", headers=reader)).status_code == 200
    jobs_only = await _key(http, "jobs:read")
    assert (await http.get("/v1/mail/watches", headers=jobs_only)).status_code == 403
    nobody = {"Authorization": "Bearer fk_not_a_key"}
    assert (await http.get("/v1/mail/watches", headers=nobody)).status_code == 401


# -- the command line -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    live = LiveServer().start()
    yield live
    live.stop()


def test_the_cli_adds_lists_shows_and_removes_watches(
    server: LiveServer, tmp_path: Path, dovecot: Dovecot, user: str
) -> None:
    runner = CliRunner(
        env={"FAENA_SERVER": server.url, "FAENA_API_KEY": server.api_key, "FAENA_JSON": None}
    )

    def faena(*args: str, input: str | None = None) -> Any:
        return runner.invoke(main, list(args), input=input, catch_exceptions=False)

    workflow = tmp_path / "intake.yaml"
    workflow.write_text(INTAKE.replace("kind: capture", "kind: noop").replace(
        '    with: {message: "{{ inputs.message }}"}\n', ""))  # fmt: skip
    assert faena("workflow", "apply", str(workflow)).exit_code == 0
    assert faena("secrets", "set", "IMAP_PASSWORD", input=PASSWORD).exit_code == 0
    added = faena(
        "mail", "watch", "add", "invoices", "--host", "127.0.0.1",
        "--port", str(dovecot.imap_port), "--security", "none", "--username", user,
        "--password-secret", "IMAP_PASSWORD", "--workflow", "intake", "--poll", "0.2",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert f"watching {user}@127.0.0.1/INBOX as invoices" in added.stdout

    dovecot.append(user, message("via the cli"))

    def ingested() -> list[dict[str, Any]]:
        result = faena("mail", "watch", "messages", "invoices", "--json")
        return list(json.loads(result.stdout)["messages"])

    import asyncio

    async def poll() -> list[dict[str, Any]]:
        return await eventually(lambda: asyncio.to_thread(ingested))

    [record] = asyncio.run(poll())
    assert record["state"] == "ingested" and record["subject"] == "via the cli"

    listed = faena("mail", "watch", "list")
    assert listed.exit_code == 0
    assert "invoices" in listed.stdout and "PROCESSED" in listed.stdout
    shown = faena("mail", "watch", "show", "invoices", "--json")
    assert json.loads(shown.stdout)["state"]["processed"] == 1
    removed = faena("mail", "watch", "remove", "invoices")
    assert removed.exit_code == 0, removed.output
    missing = faena("mail", "watch", "remove", "invoices")
    assert missing.exit_code != 0
    assert missing.stderr.strip() == "faena: no mail watch 'invoices'"
    bad = faena("mail", "watch", "add", "x", "--host", "h", "--username", "u")
    assert bad.exit_code != 0 and "'password_secret' is required" in bad.stderr


async def test_put_secret_helper_is_the_real_secret_service(runtime: Runtime) -> None:
    await put_secret(runtime, "X", "y-value")
    assert runtime.secrets is not None
    assert await runtime.secrets.resolve(DEFAULT_TENANT, "X") == "y-value"


async def test_another_tenants_watches_are_invisible(
    runtime: Runtime, http: httpx.AsyncClient
) -> None:
    assert (await http.post("/v1/mail/watches", json=WATCH)).status_code == 201
    created = await http.post("/v1/tenants", json={"name": "globex"})
    assert created.status_code == 201, created.text
    key = await http.post(
        "/v1/keys", json={"name": "g", "scopes": ["workflows:read"], "tenant": "globex"}
    )
    assert key.status_code == 201, key.text
    other = {"Authorization": f"Bearer {key.json()['key']}"}
    assert (await http.get("/v1/mail/watches", headers=other)).json() == {"watches": []}
    assert (await http.get("/v1/mail/watches/invoices", headers=other)).status_code == 404
