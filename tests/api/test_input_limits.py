"""Input protection: nesting and string-length limits on JSON and YAML bodies, and an
unexpected error answered with nothing but a request id that the server's log line carries."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import structlog

from faena.adapters.local_bus import LocalBus
from faena.adapters.memory.store import MemoryStore
from faena.api.app import create_app
from faena.api.body import InputLimits
from faena.domain.jobs import DEFAULT_TENANT, Job
from faena.ports.clock import SystemClock
from faena.services.keys import KeyService
from faena.services.orchestrator import Orchestrator
from faena.testing import InMemoryFaena
from tests.api.conftest import assert_error, catalog


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


class BrokenStore(MemoryStore):
    """A store whose reads fail the way a driver does: a message full of internals."""

    async def get(self, tenant: str, job_id: str) -> Job | None:
        raise RuntimeError(
            'asyncpg: syntax error at "SELECT * FROM faena.jobs WHERE id = $1" '
            "(/work/main/src/faena/adapters/postgres/store.py:123)"
        )


@pytest.fixture
async def client() -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    store = BrokenStore()
    clock = SystemClock()
    keys = KeyService(store, clock)
    key = (await keys.create(DEFAULT_TENANT, "k", ["admin"])).plaintext
    app = create_app(
        Orchestrator(store, LocalBus(), clock, catalog()),
        keys,
        input_limits=InputLimits(max_depth=8, max_string_length=100),
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app),
        base_url="http://faena.test",
        headers={"Authorization": f"Bearer {key}"},
    ) as http:
        yield http, key


async def test_a_body_nested_past_the_limit_is_a_422_naming_it(
    client: tuple[httpx.AsyncClient, str],
) -> None:
    http, _ = client
    ok = await http.post("/v1/jobs", json={"kind": "noop", "payload": nested(6)})
    assert ok.status_code == 201, ok.text
    response = await http.post("/v1/jobs", json={"kind": "noop", "payload": nested(8)})
    message = assert_error(response, 422, "invalid")
    assert "nested more than 8 levels" in message and "FAENA_MAX_JSON_DEPTH" in message
    list_deep = await http.post("/v1/jobs/batch", json=[[[[[[[[[{"kind": "noop"}]]]]]]]]])
    assert "nested more than 8" in assert_error(list_deep, 422, "invalid")


async def test_a_body_nested_past_the_parsers_own_limit_is_a_422_too(
    client: tuple[httpx.AsyncClient, str],
) -> None:
    http, _ = client
    raw = b'{"kind":"noop","payload":' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = await http.post(
        "/v1/jobs", content=raw, headers={"Content-Type": "application/json"}
    )
    assert "nested more than 8 levels" in assert_error(response, 422, "invalid")


async def test_a_string_past_the_limit_is_a_413_naming_it(
    client: tuple[httpx.AsyncClient, str],
) -> None:
    http, _ = client
    ok = await http.post("/v1/jobs", json={"kind": "noop", "payload": {"s": "x" * 100}})
    assert ok.status_code == 201, ok.text
    for payload in ({"s": "x" * 101}, {"k" * 101: 1}, ["é" * 101]):
        response = await http.post("/v1/jobs", json={"kind": "noop", "payload": payload})
        message = assert_error(response, 413, "payload_too_large")
        assert "101 characters" in message and "FAENA_MAX_STRING_LENGTH" in message


async def test_an_unexpected_error_shows_only_a_request_id_which_the_log_carries(
    client: tuple[httpx.AsyncClient, str],
) -> None:
    http, _ = client
    with structlog.testing.capture_logs() as logs:
        response = await http.get("/v1/jobs/j1", headers={"X-Request-Id": "req-boom-1"})
    message = assert_error(response, 500, "internal")
    assert message == "internal error; request id req-boom-1"
    for leak in ("SELECT", "asyncpg", "/work/", ".py", "Traceback", "RuntimeError"):
        assert leak not in response.text
    [line] = [e for e in logs if e["event"] == "unhandled error"]
    assert line["request_id"] == "req-boom-1"
    assert line["log_level"] == "error" and line["exc_info"] is True  # with its traceback
    assert line["path"] == "/v1/jobs/j1"


async def test_the_unexpected_error_log_line_is_one_json_object_with_id_and_traceback(
    client: tuple[httpx.AsyncClient, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """As the server logs it (``FAENA_LOG_FORMAT=json``)."""
    http, _ = client
    previous = structlog.get_config()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    try:
        response = await http.get("/v1/jobs/j1", headers={"X-Request-Id": "req-boom-2"})
    finally:
        structlog.configure(**previous)
    assert response.status_code == 500
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    [line] = [e for e in lines if e.get("request_id") == "req-boom-2"]
    assert "Traceback" in line["exception"] and "SELECT * FROM faena.jobs" in line["exception"]


YAML_BOMB = """name: bomb
a: &a ["x","x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]
steps: [*h]
"""


async def test_yaml_workflows_have_the_same_limits_and_cannot_expand() -> None:
    async with (
        InMemoryFaena(workers=0) as faena,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(faena.app),
            base_url="http://faena.test",
            headers={"Authorization": f"Bearer {faena.api_key}", "Content-Type": "text/yaml"},
        ) as http,
    ):
        bomb = await http.put("/v1/workflows/bomb", content=YAML_BOMB)
        assert "expands to more than" in assert_error(bomb, 413, "payload_too_large")
        deep = "name: deep\nsteps: " + "[" * 40 + "]" * 40 + "\n"
        response = await http.put("/v1/workflows/deep", content=deep)
        assert "nested more than 32" in assert_error(response, 422, "invalid")
        looped = await http.put("/v1/workflows/loop", content="name: loop\nsteps: &s [*s]\n")
        assert "recursive" in assert_error(looped, 422, "invalid")
        wrong = await http.put(
            "/v1/workflows/w", content=b"x", headers={"Content-Type": "image/png"}
        )
        assert "YAML or JSON" in assert_error(wrong, 415, "unsupported_media_type")
        request = http.build_request("PUT", "/v1/workflows/w", content=b"name: w\nsteps: []\n")
        del request.headers["content-type"]  # a body of no declared type is not guessed
        bare = await http.send(request)
        message = assert_error(bare, 415, "unsupported_media_type")
        assert "no Content-Type" in message and "application/yaml" in message
