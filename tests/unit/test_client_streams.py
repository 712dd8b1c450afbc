"""``follow_logs`` resumes a dropped stream with ``Last-Event-ID``; the SSE parser."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest

import faena
from faena.client import Client
from faena.client_models import SseEvent, parse_sse


def log_frame(cursor: int, data: str) -> bytes:
    chunk = {"cursor": cursor, "seq": cursor, "attempt": 1, "stream": "stdout", "data": data,
             "ts": "2030-01-01T00:00:00Z"}  # fmt: skip
    return b"id: %d\nevent: log\ndata: %s\n\n" % (cursor, orjson.dumps(chunk))


class DroppingStream(httpx.SyncByteStream):
    """Sends some frames, then fails like a connection reset."""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames

    def __iter__(self) -> Iterator[bytes]:
        yield from self.frames
        raise httpx.ReadError("connection reset by peer")


def test_a_dropped_follow_resumes_after_the_last_event() -> None:
    resumed_from: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        resumed_from.append(request.headers.get("last-event-id"))
        if len(resumed_from) == 1:
            stream = DroppingStream([log_frame(1, "a"), log_frame(2, "b")])
            return httpx.Response(200, stream=stream, headers={"content-type": "text/event-stream"})
        body = (
            b": keepalive\n\n" + log_frame(3, "c") + b'event: end\ndata: {"state":"succeeded"}\n\n'
        )
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    with Client("http://faena.test", "fk_x", transport=httpx.MockTransport(handler)) as client:
        chunks = list(client.follow_logs("job-1"))
    assert [c.data for c in chunks] == ["a", "b", "c"]
    assert resumed_from == ["0", "2"]


def test_a_follow_that_cannot_connect_is_unavailable_at_once() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    transport = httpx.MockTransport(handler)
    with (
        Client("http://faena.test", "fk_x", transport=transport) as client,
        pytest.raises(faena.Unavailable, match="connection refused"),
    ):
        list(client.follow_logs("job-1"))


def test_a_follow_of_an_unknown_job_raises_not_found() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        error = {"error": {"code": "not_found", "message": "no job 'x'", "request_id": "r"}}
        return httpx.Response(404, json=error)

    transport = httpx.MockTransport(handler)
    with (
        Client("http://faena.test", "fk_x", transport=transport) as client,
        pytest.raises(faena.NotFound, match="no job 'x'"),
    ):
        list(client.follow_logs("x"))


def test_an_error_without_the_error_shape_is_still_a_faena_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="bad gateway")

    transport = httpx.MockTransport(handler)
    with (
        Client("http://faena.test", "fk_x", transport=transport) as client,
        pytest.raises(faena.Unavailable, match="answered HTTP 502"),
    ):
        client.kinds()


def test_sse_frames_are_parsed_and_comments_skipped() -> None:
    lines = [": hello", "id: 7", "event: log", "data: {}", "", "data: a", "data: b", ""]
    assert list(parse_sse(lines)) == [
        SseEvent(event="log", data="{}", id="7"),
        SseEvent(event="message", data="a\nb", id=None),
    ]
