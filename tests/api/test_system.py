"""Health, readiness and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import httpx

from faena.api.app import create_app
from faena.domain.errors import Unavailable
from tests.api.conftest import Api, assert_error


def client_for(api: Api, **options: Any) -> httpx.AsyncClient:
    app = create_app(api.orchestrator, api.keys, **options)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://faena.test")


async def test_healthz_needs_no_key(api: Api) -> None:
    response = await api.client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_reports_the_checks(api: Api) -> None:
    async def ready() -> dict[str, Any]:
        return {"store": "ok"}

    async with client_for(api, ready=ready) as client:
        response = await client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready", "store": "ok"})


async def test_readyz_is_a_503_without_the_errors_text(api: Api) -> None:
    """An Unavailable that is not a readiness report: its text stays in the log."""

    async def ready() -> dict[str, Any]:
        raise Unavailable("store: database is locked at /srv/faena/faena.db")

    async with client_for(api, ready=ready) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "/srv/faena" not in response.text and "locked" not in response.text
    assert (
        body["error"]["message"]
        == f"readiness check failed; request id {body['error']['request_id']}"
    )


async def test_a_store_that_cannot_be_reached_is_a_503(api: Api, monkeypatch: Any) -> None:
    async def down(tenant: str, job_id: str) -> None:
        raise Unavailable("the store is not reachable")

    monkeypatch.setattr(api.store, "get", down)
    response = await api.client.get("/v1/jobs/x", headers=api.auth(api.reader))
    assert_error(response, 503, "unavailable")


async def test_the_openapi_document_lists_every_route(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()
    assert set(document["paths"]) >= {
        "/v1/jobs",
        "/v1/jobs/batch",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/cancel",
        "/v1/jobs/{job_id}/retry",
        "/v1/jobs/{job_id}/logs",
        "/v1/stats",
        "/v1/kinds",
        "/v1/keys",
        "/v1/keys/{key_id}",
        "/healthz",
        "/readyz",
    }


async def test_the_openapi_document_describes_the_submit_body(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()
    body = document["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    assert "kind" in body["schema"]["properties"]
    assert "JobIn" in document["components"]["schemas"]


async def test_the_docs_page_is_served(api: Api) -> None:
    response = await api.client.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()
