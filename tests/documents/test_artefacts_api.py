"""``/v1/artefacts`` over HTTP: raw-body uploads past the API's general body limit up to the
artefact limit, downloads, pages, deletes, scopes, and 404 across tenants."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from faena.adapters.blobs.local import LocalDirBlobStore
from faena.adapters.local_bus import LocalBus
from faena.adapters.memory.store import MemoryStore
from faena.api.app import create_app
from faena.domain.jobs import DEFAULT_TENANT
from faena.ports.clock import SystemClock
from faena.services.artefacts import ArtefactService
from faena.services.keys import KeyService
from faena.services.orchestrator import Orchestrator
from tests.api.conftest import assert_error, catalog

GENERAL_LIMIT = 64 * 1024
ARTEFACT_LIMIT = 256 * 1024


@dataclass
class Http:
    client: httpx.AsyncClient
    writer: dict[str, str]
    reader: dict[str, str]
    other: dict[str, str]
    service: ArtefactService

    async def upload(
        self, data: bytes, name: str = "a.bin", ctype: str = "application/octet-stream"
    ) -> httpx.Response:
        return await self.client.post(
            "/v1/artefacts",
            params={"name": name},
            content=data,
            headers={**self.writer, "Content-Type": ctype},
        )


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[Http]:
    store = MemoryStore()
    await store.open()
    clock = SystemClock()
    keys = KeyService(store, clock)
    service = ArtefactService(
        store, LocalDirBlobStore(tmp_path / "blobs"), clock, max_bytes=ARTEFACT_LIMIT
    )

    async def key(tenant: str, *scopes: str) -> dict[str, str]:
        created = await keys.create(tenant, "k", list(scopes))
        return {"Authorization": f"Bearer {created.plaintext}"}

    app = create_app(
        Orchestrator(store, LocalBus(), clock, catalog()),
        keys,
        max_body_bytes=GENERAL_LIMIT,
        artefacts=service,
        ui=False,
    )
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://faena.test") as client:
        yield Http(
            client,
            await key(DEFAULT_TENANT, "jobs:read", "jobs:write"),
            await key(DEFAULT_TENANT, "jobs:read"),
            await key("b", "jobs:read", "jobs:write"),
            service,
        )
    await store.close()


async def test_an_upload_larger_than_the_api_body_limit_is_stored(http: Http) -> None:
    data = os.urandom(200 * 1024)
    response = await http.upload(data, "scan.pdf", "application/pdf")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "scan.pdf"
    assert body["size"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["content_type"] == "application/pdf"
    assert response.headers["location"] == f"/v1/artefacts/{body['id']}"
    info = await http.client.get(f"/v1/artefacts/{body['id']}", headers=http.reader)
    assert info.json() == body
    content = await http.client.get(f"/v1/artefacts/{body['id']}/content", headers=http.reader)
    assert content.status_code == 200
    assert content.content == data
    assert content.headers["content-type"] == "application/pdf"
    assert content.headers["content-disposition"] == "attachment; filename*=UTF-8''scan.pdf"
    assert content.headers["x-content-type-options"] == "nosniff"


async def test_an_upload_over_the_artefact_limit_is_413(http: Http) -> None:
    response = await http.upload(b"x" * (ARTEFACT_LIMIT + 1))
    assert_error(response, 413, "payload_too_large")
    assert (await http.service.list(DEFAULT_TENANT)).artefacts == []


async def test_an_upload_of_unknown_length_over_the_limit_is_413(http: Http) -> None:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"y" * (ARTEFACT_LIMIT // 4)

    response = await http.client.post("/v1/artefacts", content=body(), headers=http.writer)
    assert_error(response, 413, "payload_too_large")
    assert list((Path(http.service.blobs.root) / ".tmp").iterdir()) == []  # type: ignore[attr-defined]


async def test_the_general_limit_still_holds_elsewhere(http: Http) -> None:
    response = await http.client.post(
        "/v1/jobs", content=b"x" * (GENERAL_LIMIT + 1), headers=http.writer
    )
    assert_error(response, 413, "payload_too_large")


async def test_bad_uploads_are_422(http: Http) -> None:
    assert_error(await http.upload(b""), 422, "invalid")
    assert_error(await http.upload(b"x", ctype="nonsense"), 422, "invalid")
    response = await http.client.post(
        "/v1/artefacts", params={"job_id": "nope"}, content=b"x", headers=http.writer
    )
    assert_error(response, 422, "invalid")


async def test_another_tenant_gets_404_everywhere(http: Http) -> None:
    created = (await http.upload(b"secret")).json()
    for method, path in (
        ("GET", f"/v1/artefacts/{created['id']}"),
        ("GET", f"/v1/artefacts/{created['id']}/content"),
        ("DELETE", f"/v1/artefacts/{created['id']}"),
    ):
        response = await http.client.request(method, path, headers=http.other)
        assert_error(response, 404, "not_found")
    listed = await http.client.get("/v1/artefacts", headers=http.other)
    assert listed.json() == {"artefacts": [], "next_cursor": None}


async def test_scopes_read_cannot_upload_or_delete(http: Http) -> None:
    response = await http.client.post("/v1/artefacts", content=b"x", headers=http.reader)
    assert_error(response, 403, "forbidden")
    created = (await http.upload(b"x")).json()
    response = await http.client.delete(f"/v1/artefacts/{created['id']}", headers=http.reader)
    assert_error(response, 403, "forbidden")
    assert_error(await http.client.get("/v1/artefacts"), 401, "unauthorized")


async def test_list_pages_with_a_cursor_and_delete(http: Http) -> None:
    ids = [(await http.upload(bytes([i]))).json()["id"] for i in range(3)]
    first = (await http.client.get("/v1/artefacts?limit=2", headers=http.reader)).json()
    assert [a["id"] for a in first["artefacts"]] == [ids[2], ids[1]]
    rest = await http.client.get(
        "/v1/artefacts", params={"limit": 2, "cursor": first["next_cursor"]}, headers=http.reader
    )
    assert [a["id"] for a in rest.json()["artefacts"]] == [ids[0]]
    response = await http.client.delete(f"/v1/artefacts/{ids[0]}", headers=http.writer)
    assert response.status_code == 204
    gone = await http.client.get(f"/v1/artefacts/{ids[0]}/content", headers=http.reader)
    assert_error(gone, 404, "not_found")
    assert_error(
        await http.client.get("/v1/artefacts?cursor=bad", headers=http.reader), 422, "invalid"
    )


async def test_the_routes_are_in_the_openapi_document(http: Http) -> None:
    paths = (await http.client.get("/openapi.json")).json()["paths"]
    assert {
        "/v1/artefacts",
        "/v1/artefacts/{artefact_id}",
        "/v1/artefacts/{artefact_id}/content",
    } <= set(paths)
    body = paths["/v1/artefacts"]["post"]["requestBody"]["content"]
    assert body["*/*"]["schema"]["format"] == "binary"
