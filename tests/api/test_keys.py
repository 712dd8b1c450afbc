"""/v1/keys: create (plaintext once), list, revoke; admin only."""

from __future__ import annotations

import time

from tests.api.conftest import Api, assert_error


async def test_a_created_key_is_shown_once_and_works(api: Api) -> None:
    response = await api.client.post(
        "/v1/keys", json={"name": "ci", "scopes": ["jobs:read"]}, headers=api.auth(api.admin)
    )
    assert response.status_code == 201
    created = response.json()
    assert created["key"].startswith("fk_")
    assert (created["name"], created["scopes"], created["tenant"]) == (
        "ci",
        ["jobs:read"],
        "default",
    )
    works = await api.client.get("/v1/jobs", headers=api.auth(created["key"]))
    assert works.status_code == 200


async def test_a_key_defaults_to_reading_and_writing_jobs(api: Api) -> None:
    response = await api.client.post("/v1/keys", json={"name": "app"}, headers=api.auth(api.admin))
    assert response.json()["scopes"] == ["jobs:read", "jobs:write"]


async def test_a_key_may_be_made_for_another_tenant(api: Api) -> None:
    response = await api.client.post(
        "/v1/keys", json={"name": "t", "tenant": "acme"}, headers=api.auth(api.admin)
    )
    job = await api.submit(key=response.json()["key"])
    assert job["tenant"] == "acme"


async def test_a_key_may_expire(api: Api) -> None:
    response = await api.client.post(
        "/v1/keys",
        json={"name": "temp", "expires_at": time.time() + 3600},
        headers=api.auth(api.admin),
    )
    assert response.json()["expires_at"] is not None


async def test_an_expiry_in_the_past_is_refused(api: Api) -> None:
    response = await api.client.post(
        "/v1/keys", json={"name": "old", "expires_at": 1000}, headers=api.auth(api.admin)
    )
    assert "expires_at" in assert_error(response, 422, "invalid")


async def test_an_unknown_scope_is_refused_with_the_known_ones(api: Api) -> None:
    response = await api.client.post(
        "/v1/keys", json={"name": "x", "scopes": ["jobs:everything"]}, headers=api.auth(api.admin)
    )
    message = assert_error(response, 422, "invalid")
    assert "jobs:everything" in message and "jobs:read" in message


async def test_keys_are_listed_without_secrets(api: Api) -> None:
    response = await api.client.get("/v1/keys", headers=api.auth(api.admin))
    keys = response.json()["keys"]
    assert {k["name"] for k in keys} >= {"admin", "w", "r"}
    assert all("key" not in k and "key_hash" not in k for k in keys)


async def test_a_revoked_key_stops_working(api: Api) -> None:
    created = (
        await api.client.post("/v1/keys", json={"name": "gone"}, headers=api.auth(api.admin))
    ).json()
    response = await api.client.delete(f"/v1/keys/{created['id']}", headers=api.auth(api.admin))
    assert response.status_code == 200
    assert response.json()["revoked_at"] is not None
    refused = await api.client.get("/v1/jobs", headers=api.auth(created["key"]))
    assert_error(refused, 401, "unauthorized")


async def test_revoking_an_unknown_key_is_a_404(api: Api) -> None:
    response = await api.client.delete("/v1/keys/nope", headers=api.auth(api.admin))
    assert_error(response, 404, "not_found")


async def test_keys_need_the_admin_scope(api: Api) -> None:
    response = await api.client.post("/v1/keys", json={"name": "x"}, headers=api.auth(api.writer))
    assert_error(response, 403, "forbidden")
