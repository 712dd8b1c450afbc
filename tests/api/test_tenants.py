"""/v1/tenants: only the operator (an admin key of the default tenant) creates and lists."""

from __future__ import annotations

from tests.api.conftest import Api, assert_error, every_store

store_backend = every_store  # every test here runs on memory, SQLite and PostgreSQL


async def test_the_operator_creates_and_lists_tenants(api: Api) -> None:
    response = await api.client.post(
        "/v1/tenants",
        json={"name": "acme", "display_name": "Acme Ltd"},
        headers=api.auth(api.admin),
    )
    assert response.status_code == 201, response.text
    assert response.json()["id"] == "acme"
    assert response.json()["display_name"] == "Acme Ltd"
    listed = await api.client.get("/v1/tenants", headers=api.auth(api.admin))
    assert [t["id"] for t in listed.json()["tenants"]] == ["acme", "b", "default"]


async def test_an_admin_of_another_tenant_is_not_the_operator(api: Api) -> None:
    made = await api.client.post(
        "/v1/keys",
        json={"name": "b-admin", "tenant": "b", "scopes": ["admin"]},
        headers=api.auth(api.admin),
    )
    b_admin = api.auth(made.json()["key"])
    created = await api.client.post("/v1/tenants", json={"name": "x"}, headers=b_admin)
    assert "'default' tenant" in assert_error(created, 403, "forbidden")
    listed = await api.client.get("/v1/tenants", headers=b_admin)
    assert_error(listed, 403, "forbidden")


async def test_a_tenant_name_is_used_once(api: Api) -> None:
    first = await api.client.post("/v1/tenants", json={"name": "acme"}, headers=api.auth(api.admin))
    again = await api.client.post("/v1/tenants", json={"name": "acme"}, headers=api.auth(api.admin))
    assert first.status_code == 201
    assert "already exists" in assert_error(again, 409, "conflict")


async def test_a_tenant_name_is_plain(api: Api) -> None:
    for name in ("Acme", "a b", "-x", "é"):
        response = await api.client.post(
            "/v1/tenants", json={"name": name}, headers=api.auth(api.admin)
        )
        assert_error(response, 422, "invalid")
