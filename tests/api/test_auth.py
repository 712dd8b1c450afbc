"""Bearer keys on every /v1 route, scopes, and tenant isolation."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api, assert_error, every_store

store_backend = every_store  # every test here runs on memory, SQLite and PostgreSQL

V1_ROUTES = [
    ("POST", "/v1/jobs"),
    ("POST", "/v1/jobs/batch"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/some-id"),
    ("POST", "/v1/jobs/some-id/cancel"),
    ("POST", "/v1/jobs/some-id/retry"),
    ("GET", "/v1/jobs/some-id/logs"),
    ("GET", "/v1/stats"),
    ("GET", "/v1/kinds"),
    ("POST", "/v1/keys"),
    ("GET", "/v1/keys"),
    ("DELETE", "/v1/keys/some-id"),
]


@pytest.mark.parametrize(("method", "path"), V1_ROUTES)
async def test_every_v1_route_needs_a_key(api: Api, method: str, path: str) -> None:
    response = await api.client.request(method, path, json={"kind": "noop"})
    assert "Authorization: Bearer" in assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_an_unknown_key_is_refused(api: Api) -> None:
    response = await api.client.get("/v1/jobs", headers=api.auth("fk_not-a-real-key"))
    assert assert_error(response, 401, "unauthorized") == "invalid API key"


async def test_a_malformed_authorization_header_is_refused(api: Api) -> None:
    response = await api.client.get("/v1/jobs", headers={"Authorization": f"Basic {api.reader}"})
    assert_error(response, 401, "unauthorized")


async def test_the_auth_check_comes_before_the_body_is_read(api: Api) -> None:
    response = await api.client.post(
        "/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_error(response, 401, "unauthorized")


async def test_a_read_only_key_cannot_submit(api: Api) -> None:
    response = await api.client.post(
        "/v1/jobs", json={"kind": "noop"}, headers=api.auth(api.reader)
    )
    assert "'jobs:write'" in assert_error(response, 403, "forbidden")


async def test_a_read_only_key_can_read(api: Api) -> None:
    response = await api.client.get("/v1/jobs", headers=api.auth(api.reader))
    assert response.status_code == 200


async def test_a_job_key_cannot_manage_keys(api: Api) -> None:
    response = await api.client.get("/v1/keys", headers=api.auth(api.writer))
    assert "'admin'" in assert_error(response, 403, "forbidden")


async def test_another_tenant_cannot_see_a_job(api: Api) -> None:
    job = await api.submit()
    response = await api.client.get(f"/v1/jobs/{job['id']}", headers=api.auth(api.other))
    assert_error(response, 404, "not_found")


async def test_another_tenant_cannot_cancel_a_job(api: Api) -> None:
    job = await api.submit()
    response = await api.client.post(f"/v1/jobs/{job['id']}/cancel", headers=api.auth(api.other))
    assert_error(response, 404, "not_found")


async def test_a_job_belongs_to_the_tenant_of_its_key(api: Api) -> None:
    job = await api.submit(key=api.other)
    assert job["tenant"] == "b"
    listed = await api.client.get("/v1/jobs", headers=api.auth(api.writer))
    assert listed.json()["jobs"] == []
