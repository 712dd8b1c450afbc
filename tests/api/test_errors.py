"""Requests refused before any route runs, and the shape every error has."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import structlog

from tests.api.conftest import MAX_BODY, Api, assert_error


async def test_malformed_json_is_a_400_naming_the_position(api: Api) -> None:
    response = await api.client.post(
        "/v1/jobs",
        content=b'{"kind": "noop",',
        headers={**api.auth(api.writer), "Content-Type": "application/json"},
    )
    message = assert_error(response, 400, "invalid_json")
    assert "line 1 column" in message


async def test_an_empty_body_is_a_400(api: Api) -> None:
    response = await api.client.post(
        "/v1/jobs", headers={**api.auth(api.writer), "Content-Type": "application/json"}
    )
    assert_error(response, 400, "invalid_json")


async def test_a_body_of_another_media_type_is_a_415(api: Api) -> None:
    response = await api.client.post(
        "/v1/jobs", data={"kind": "noop"}, headers=api.auth(api.writer)
    )
    assert "application/json" in assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/jobs"),  # the hot route
        ("POST", "/v1/jobs/batch"),
        ("POST", "/v1/keys"),
        ("POST", "/v1/tenants"),
    ],
)
async def test_a_body_without_a_content_type_is_a_415_not_read_as_json(
    api: Api, method: str, path: str
) -> None:
    body = b'{"kind": "noop", "name": "x"}'
    response = await api.client.request(method, path, content=body, headers=api.auth(api.admin))
    message = assert_error(response, 415, "unsupported_media_type")
    assert "no Content-Type" in message and "application/json" in message
    stats = await api.client.get("/v1/stats", headers=api.auth(api.admin))
    assert sum(stats.json()["by_state"].values()) == 0  # nothing was submitted


async def test_a_declared_body_over_the_limit_is_a_413(api: Api) -> None:
    payload = "x" * (MAX_BODY + 1)
    response = await api.client.post(
        "/v1/jobs", json={"kind": "noop", "payload": payload}, headers=api.auth(api.writer)
    )
    assert str(MAX_BODY) in assert_error(response, 413, "payload_too_large")


async def test_a_streamed_body_over_the_limit_is_a_413(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"kind": "noop", "payload": "'
        for _ in range(MAX_BODY // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    response = await api.client.post(
        "/v1/jobs",
        content=chunks(),
        headers={**api.auth(api.writer), "Content-Type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large")


async def test_an_unknown_route_is_a_404_in_the_error_shape(api: Api) -> None:
    response = await api.client.get("/v1/nothing-here")
    assert "/v1/nothing-here" in assert_error(response, 404, "not_found")


async def test_a_wrong_method_is_a_405_in_the_error_shape(api: Api) -> None:
    response = await api.client.delete("/v1/jobs", headers=api.auth(api.writer))
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]


async def test_an_unexpected_exception_is_a_bare_500_logged_with_its_trace(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(tenant: str) -> object:
        raise RuntimeError("secret database detail")

    monkeypatch.setattr(api.orchestrator, "stats", broken)
    with structlog.testing.capture_logs() as logs:
        response = await api.client.get("/v1/stats", headers=api.auth(api.reader))
    message = assert_error(response, 500, "internal")
    request_id = response.headers["x-request-id"]
    assert message == f"internal error; request id {request_id}"
    assert "secret" not in response.text
    [entry] = [e for e in logs if e["event"] == "unhandled error"]
    assert entry["request_id"] == request_id
    assert entry["exc_info"] is True


async def test_a_request_id_given_by_the_client_is_kept(api: Api) -> None:
    response = await api.client.get("/v1/nothing", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json()["error"]["request_id"] == "abc-123"


async def test_a_successful_response_has_a_request_id(api: Api) -> None:
    response = await api.client.get("/healthz")
    assert len(response.headers["x-request-id"]) == 16


async def test_text_json_cannot_carry_is_invalid_json(api: Api) -> None:
    response = await api.client.post(
        "/v1/jobs",
        content=b'{"kind": "noop", "payload": "\\ud800"}',
        headers={**api.auth(api.writer), "Content-Type": "application/json"},
    )
    assert "surrogate" in assert_error(response, 400, "invalid_json")
