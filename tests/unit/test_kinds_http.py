"""The http kind against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from faena.worker.executor import Executor, Outcome
from faena.worker.kinds.http import MAX_BODY_BYTES
from tests.unit.executor_support import RecordingSink, make_job


class Handler(BaseHTTPRequestHandler):
    release: threading.Event

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        path = self.path
        if path == "/json":
            self.reply(200, b'{"hello": "world"}', "application/json")
        elif path == "/text":
            self.reply(200, "olá".encode(), "text/plain; charset=utf-8")
        elif path.startswith("/status/"):
            self.reply(int(path.rsplit("/", 1)[1]), b"status page", "text/plain")
        elif path == "/big":
            self.reply(200, b"x" * (MAX_BODY_BYTES + 10), "application/octet-stream")
        elif path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/json")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/slow":
            self.server_release().wait(10)
            self.reply(200, b"late", "text/plain")
        else:
            self.reply(404, b"no such page", "text/plain")

    def do_POST(self) -> None:
        self.echo()

    def do_PUT(self) -> None:
        self.echo()

    def echo(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        seen = {
            "method": self.command,
            "body": body,
            "content_type": self.headers.get("Content-Type"),
            "x_token": self.headers.get("X-Token"),
        }
        self.reply(200, json.dumps(seen).encode(), "application/json")

    def reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def server_release(self) -> threading.Event:
        release: threading.Event = self.server.release  # type: ignore[attr-defined]
        return release


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.release = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.release.set()  # type: ignore[attr-defined]
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
async def executor() -> AsyncIterator[Executor]:
    ex = Executor()
    try:
        yield ex
    finally:
        await ex.aclose()


async def run_http(executor: Executor, payload: Any, **job: Any) -> Outcome:
    return await executor.run(make_job("http", payload, **job), RecordingSink())


async def test_a_json_response_is_parsed_into_the_result(executor: Executor, server: str) -> None:
    outcome = await run_http(executor, {"url": f"{server}/json"})
    assert outcome.succeeded
    assert outcome.result["status"] == 200
    assert outcome.result["json"] == {"hello": "world"}
    assert outcome.result["headers"]["content-type"] == "application/json"


async def test_a_text_response_is_decoded_into_the_result(executor: Executor, server: str) -> None:
    outcome = await run_http(executor, {"url": f"{server}/text"})
    assert outcome.result["text"] == "olá"
    assert "json" not in outcome.result


async def test_a_json_payload_is_sent_as_the_request_body(executor: Executor, server: str) -> None:
    outcome = await run_http(
        executor,
        {
            "method": "post",
            "url": f"{server}/echo",
            "json": {"amount": 12},
            "headers": {"X-Token": "t0k"},
        },
    )
    assert outcome.result["json"] == {
        "method": "POST",
        "body": '{"amount":12}',
        "content_type": "application/json",
        "x_token": "t0k",
    }


async def test_a_string_body_is_sent_as_is(executor: Executor, server: str) -> None:
    outcome = await run_http(executor, {"method": "PUT", "url": f"{server}/echo", "body": "a=1"})
    assert (outcome.result["json"]["method"], outcome.result["json"]["body"]) == ("PUT", "a=1")


async def test_a_5xx_fails_retryably_with_the_status(executor: Executor, server: str) -> None:
    outcome = await run_http(executor, {"url": f"{server}/status/503"})
    assert (outcome.succeeded, outcome.error, outcome.retryable) == (
        False,
        f"HTTP 503 from {server}/status/503",
        True,
    )
    assert outcome.result["status"] == 503


async def test_a_429_fails_retryably(executor: Executor, server: str) -> None:
    outcome = await run_http(executor, {"url": f"{server}/status/429"})
    assert (outcome.succeeded, outcome.retryable) == (False, True)


async def test_a_4xx_fails_without_retry(executor: Executor, server: str) -> None:
    outcome = await run_http(executor, {"url": f"{server}/status/404"})
    assert (outcome.error, outcome.retryable) == (f"HTTP 404 from {server}/status/404", False)


async def test_redirects_are_followed(executor: Executor, server: str) -> None:
    outcome = await run_http(executor, {"url": f"{server}/redirect"})
    assert outcome.result["json"] == {"hello": "world"}


async def test_a_large_body_is_cut_at_the_limit(executor: Executor, server: str) -> None:
    outcome = await run_http(executor, {"url": f"{server}/big"})
    assert outcome.result["truncated"] is True
    assert len(outcome.result["text"]) == MAX_BODY_BYTES


async def test_the_request_timeout_fails_the_attempt_retryably(
    executor: Executor, server: str
) -> None:
    outcome = await run_http(executor, {"url": f"{server}/slow", "timeout_s": 0.1})
    assert (outcome.error, outcome.retryable) == (
        f"HTTP request to {server}/slow timed out after 0.1s",
        True,
    )


async def test_the_job_timeout_bounds_the_request(executor: Executor, server: str) -> None:
    outcome = await run_http(executor, {"url": f"{server}/slow"}, timeout_s=0.1)
    assert outcome.error == "timed out after 0.1s"


async def test_a_refused_connection_fails_retryably(executor: Executor) -> None:
    port = unused_port()
    outcome = await run_http(executor, {"url": f"http://127.0.0.1:{port}/"})
    assert (outcome.succeeded, outcome.retryable) == (False, True)
    assert outcome.error is not None
    assert outcome.error.startswith(f"HTTP request to http://127.0.0.1:{port}/ failed: Connect")


async def test_credentials_in_the_url_are_not_shown_in_errors(
    executor: Executor, server: str
) -> None:
    url = server.replace("http://", "http://user:secret@") + "/status/500"
    outcome = await run_http(executor, {"url": url})
    assert outcome.error == f"HTTP 500 from {server}/status/500"


def unused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port
