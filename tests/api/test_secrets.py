"""``/v1/secrets`` on every store: set, list and delete, scoped by tenant and by the
``secrets:write`` scope; no answer, error included, ever holds a value."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from faena.adapters.secret_keys import AesGcmKeyRing
from faena.api.app import create_app
from faena.domain.jobs import DEFAULT_TENANT
from faena.services.secrets import SecretService
from tests.api.conftest import Api, assert_error
from tests.api.conftest import every_store as store_backend  # noqa: F401 - every store

VALUE = "v3ry-s3cret-value-0042"


@dataclass
class SecretsApi:
    api: Api
    client: httpx.AsyncClient
    secrets: SecretService
    writer: str  # a key with only secrets:write

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.writer}"}


async def _client(api: Api, secrets: SecretService) -> httpx.AsyncClient:
    app = create_app(api.orchestrator, api.keys, audit=api.audit, secrets=secrets)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://faena.test")


@pytest.fixture
async def sapi(api: Api) -> AsyncIterator[SecretsApi]:
    secrets = SecretService(
        api.store, AesGcmKeyRing(os.urandom(32)), api.orchestrator.clock, audit=api.audit
    )
    writer = (await api.keys.create(DEFAULT_TENANT, "s", ["secrets:write"])).plaintext
    async with await _client(api, secrets) as client:
        yield SecretsApi(api, client, secrets, writer)


async def test_put_creates_then_replaces_without_echoing_the_value(sapi: SecretsApi) -> None:
    r = await sapi.client.put("/v1/secrets/DB_PW", json={"value": VALUE}, headers=sapi.auth())
    assert r.status_code == 201, r.text
    assert set(r.json()) == {"name", "version", "key_id", "created_at", "updated_at"}
    assert r.json()["name"] == "DB_PW" and r.json()["version"] == 1
    again = await sapi.client.put(
        "/v1/secrets/DB_PW", json={"value": VALUE + "-2"}, headers=sapi.auth()
    )
    assert again.status_code == 200 and again.json()["version"] == 2
    assert VALUE not in r.text + again.text
    assert await sapi.secrets.resolve(DEFAULT_TENANT, "DB_PW") == VALUE + "-2"


async def test_list_shows_names_and_never_values(sapi: SecretsApi) -> None:
    for name in ("B", "A"):
        await sapi.client.put(f"/v1/secrets/{name}", json={"value": VALUE}, headers=sapi.auth())
    r = await sapi.client.get("/v1/secrets", headers=sapi.auth())
    assert r.status_code == 200
    assert [s["name"] for s in r.json()["secrets"]] == ["A", "B"]
    assert VALUE not in r.text


async def test_delete_then_it_is_gone(sapi: SecretsApi) -> None:
    await sapi.client.put("/v1/secrets/GONE", json={"value": VALUE}, headers=sapi.auth())
    r = await sapi.client.delete("/v1/secrets/GONE", headers=sapi.auth())
    assert r.status_code == 200 and r.json() == {"name": "GONE", "deleted": True}
    r = await sapi.client.delete("/v1/secrets/GONE", headers=sapi.auth())
    assert_error(r, 404, "not_found")
    assert (await sapi.client.get("/v1/secrets", headers=sapi.auth())).json() == {"secrets": []}


@pytest.mark.parametrize("name", ["1ABC", "a-b", "x" * 65, "%C3%A9t%C3%A9"])
async def test_a_bad_name_is_refused(sapi: SecretsApi, name: str) -> None:
    r = await sapi.client.put(f"/v1/secrets/{name}", json={"value": VALUE}, headers=sapi.auth())
    assert "bad secret name" in assert_error(r, 422, "invalid")


@pytest.mark.parametrize(
    "body",
    [{}, {"value": 12345678}, {"value": "abc"}, {"value": VALUE, "extra": 1}, [VALUE],
     {"value": "x" * (64 * 1024 + 1)}],
)  # fmt: skip
async def test_a_bad_body_is_refused_without_echoing_it(sapi: SecretsApi, body: object) -> None:
    r = await sapi.client.put("/v1/secrets/X", json=body, headers=sapi.auth())
    message = assert_error(r, 422, "invalid")
    assert VALUE not in message and "xxxx" not in message


async def test_bad_json_is_a_400(sapi: SecretsApi) -> None:
    r = await sapi.client.put(
        "/v1/secrets/X",
        content=b'{"value": "abc',
        headers={**sapi.auth(), "content-type": "application/json"},
    )
    assert_error(r, 400, "invalid_json")


async def test_keys_without_the_scope_are_refused(sapi: SecretsApi) -> None:
    api = sapi.api
    for key in (api.writer, api.reader):
        r = await sapi.client.put("/v1/secrets/X", json={"value": VALUE}, headers=api.auth(key))
        assert "secrets:write" in assert_error(r, 403, "forbidden")
        assert_error(await sapi.client.get("/v1/secrets", headers=api.auth(key)), 403, "forbidden")
    assert_error(await sapi.client.get("/v1/secrets"), 401, "unauthorized")
    r = await sapi.client.put("/v1/secrets/X", json={"value": VALUE}, headers=api.auth(api.admin))
    assert r.status_code == 201  # admin has every scope


async def test_tenants_see_only_their_own(sapi: SecretsApi) -> None:
    api = sapi.api
    other = (await api.keys.create("b", "bs", ["secrets:write"])).plaintext
    await sapi.client.put("/v1/secrets/MINE", json={"value": VALUE}, headers=sapi.auth())
    assert (await sapi.client.get("/v1/secrets", headers=sapi.auth(other))).json() == {
        "secrets": []
    }
    r = await sapi.client.delete("/v1/secrets/MINE", headers=sapi.auth(other))
    assert_error(r, 404, "not_found")


async def test_without_a_master_key_storing_is_a_clear_503(sapi: SecretsApi) -> None:
    keyless = SecretService(sapi.api.store, None, sapi.api.orchestrator.clock)
    async with await _client(sapi.api, keyless) as client:
        r = await client.put("/v1/secrets/X", json={"value": VALUE}, headers=sapi.auth())
        assert "FAENA_SECRET_KEY" in assert_error(r, 503, "secrets_unavailable")
        assert (await client.get("/v1/secrets", headers=sapi.auth())).status_code == 200


async def test_writes_are_audited(sapi: SecretsApi) -> None:
    await sapi.client.put("/v1/secrets/AUD", json={"value": VALUE}, headers=sapi.auth())
    await sapi.client.delete("/v1/secrets/AUD", headers=sapi.auth())
    r = await sapi.client.get("/v1/audit", headers=sapi.api.auth(sapi.api.admin))
    actions = {(e["action"], e["target"]) for e in r.json()["entries"]}
    assert {("secrets.write", "secret:AUD"), ("secrets.delete", "secret:AUD")} <= actions
    assert VALUE not in r.text
