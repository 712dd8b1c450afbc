"""/v1/keys: create (plaintext once), list, revoke; admin only."""

from __future__ import annotations

import time

import pytest

from tests.api.conftest import Api, assert_error, every_store

store_backend = every_store  # every test here runs on memory, SQLite and PostgreSQL


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


async def test_the_operator_may_make_a_key_for_another_existing_tenant(api: Api) -> None:
    created = await api.client.post(
        "/v1/tenants", json={"name": "acme"}, headers=api.auth(api.admin)
    )
    assert created.status_code == 201, created.text
    response = await api.client.post(
        "/v1/keys", json={"name": "t", "tenant": "acme"}, headers=api.auth(api.admin)
    )
    job = await api.submit(key=response.json()["key"])
    assert job["tenant"] == "acme"


async def test_a_key_for_a_tenant_that_does_not_exist_is_refused(api: Api) -> None:
    response = await api.client.post(
        "/v1/keys", json={"name": "t", "tenant": "nope"}, headers=api.auth(api.admin)
    )
    assert "tenant 'nope' does not exist" in assert_error(response, 422, "invalid")


async def test_only_the_operator_may_make_keys_for_another_tenant(api: Api) -> None:
    made = await api.client.post(
        "/v1/keys",
        json={"name": "b-admin", "tenant": "b", "scopes": ["admin"]},
        headers=api.auth(api.admin),
    )
    b_admin = made.json()["key"]
    response = await api.client.post(
        "/v1/keys", json={"name": "t", "tenant": "default"}, headers=api.auth(b_admin)
    )
    assert "'default' tenant" in assert_error(response, 403, "forbidden")
    own = await api.client.post("/v1/keys", json={"name": "t"}, headers=api.auth(b_admin))
    assert own.json()["tenant"] == "b"


async def test_a_key_may_carry_its_own_rate_limit(api: Api) -> None:
    response = await api.client.post(
        "/v1/keys", json={"name": "slow", "rate_limit": 30}, headers=api.auth(api.admin)
    )
    assert response.json()["rate_limit"] == 30
    listed = await api.client.get("/v1/keys", headers=api.auth(api.admin))
    [slow] = [k for k in listed.json()["keys"] if k["name"] == "slow"]
    assert slow["rate_limit"] == 30
    principal = await api.keys.authenticate(response.json()["key"])
    assert principal.rate_limit == 30


async def test_a_key_may_carry_its_own_bulk_and_health_limits(api: Api) -> None:
    body = {"name": "probe", "rate_limit": 50, "rate_limit_bulk": 7, "rate_limit_health": 5000}
    response = await api.client.post("/v1/keys", json=body, headers=api.auth(api.admin))
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["rate_limit_bulk"], created["rate_limit_health"]) == (7, 5000)
    listed = await api.client.get("/v1/keys", headers=api.auth(api.admin))
    [probe] = [k for k in listed.json()["keys"] if k["name"] == "probe"]
    assert (probe["rate_limit"], probe["rate_limit_bulk"], probe["rate_limit_health"]) == (
        50,
        7,
        5000,
    )
    principal = await api.keys.authenticate(created["key"])
    assert (principal.rate_limit_bulk, principal.rate_limit_health) == (7, 5000)
    plain = await api.client.post("/v1/keys", json={"name": "p"}, headers=api.auth(api.admin))
    assert plain.json()["rate_limit_bulk"] is None and plain.json()["rate_limit_health"] is None


@pytest.mark.parametrize("field", ["rate_limit_bulk", "rate_limit_health"])
async def test_a_bulk_or_health_limit_below_one_is_refused(api: Api, field: str) -> None:
    response = await api.client.post(
        "/v1/keys", json={"name": "x", field: 0}, headers=api.auth(api.admin)
    )
    assert field in assert_error(response, 422, "invalid")


async def test_a_rate_limit_below_one_is_refused(api: Api) -> None:
    response = await api.client.post(
        "/v1/keys", json={"name": "x", "rate_limit": 0}, headers=api.auth(api.admin)
    )
    assert_error(response, 422, "invalid")


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
