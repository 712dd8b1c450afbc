"""A local fake LLM provider: one HTTP server on 127.0.0.1 that speaks the OpenAI Chat
Completions API (``POST /v1/chat/completions``) and Anthropic's Messages API
(``POST /v1/messages``), with and without streaming, in each protocol's real SSE event format.

Tests script what it answers: ``server.script(Reply(...), Fail(429, retry_after=1), ...)``
queues behaviours taken one per request (then ``server.default`` answers); ``server.calls``
counts requests and ``server.requests`` keeps their bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Reply:
    """An answer: ``text`` (or a function of the request body), optional tool calls."""

    text: str | Callable[[dict[str, Any]], str] = "Hello from the fake provider."
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    delay_s: float = 0.0  # before the first byte
    token_delay_s: float = 0.0  # between streamed pieces
    cut_after: int | None = None  # streamed (OpenAI): drop the connection after this many pieces


@dataclass
class Fail:
    """An HTTP error (429 with ``Retry-After``, 500 …) or, with ``hang_s``, no answer for that
    long (the client's timeout fires first)."""

    status: int = 500
    retry_after: float | None = None
    message: str = "scripted failure"
    hang_s: float = 0.0


Behaviour = Reply | Fail


def tokens_of(text: str) -> int:
    return max(1, len(text) // 4)


def pieces(text: str, size: int = 4) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class FakeProvider:
    def __init__(self) -> None:
        self.default: Behaviour = Reply()
        self._script: deque[Behaviour] = deque()
        self.calls = 0
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._arrived = asyncio.Event()
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    # -- scripting ---------------------------------------------------------------------------

    def script(self, *behaviours: Behaviour) -> None:
        self._script.extend(behaviours)

    def _next(self) -> Behaviour:
        return self._script.popleft() if self._script else self.default

    async def wait_calls(self, n: int, timeout_s: float = 5.0) -> None:
        """Until ``n`` requests have arrived (the server runs on the test's loop)."""
        async with asyncio.timeout(timeout_s):
            while self.calls < n:
                self._arrived.clear()
                await self._arrived.wait()

    @property
    def openai_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> FakeProvider:
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._openai, methods=["POST"]),
                Route("/v1/messages", self._anthropic, methods=["POST"]),
            ]
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", loop="none"
        )
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._server = server
        self._task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        deadline = time.monotonic() + 5
        while not server.started:
            if self._task.done() or time.monotonic() > deadline:
                raise RuntimeError("the fake provider did not start")
            await asyncio.sleep(0.01)
        return self

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            self._server.force_exit = True
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, 5)

    # -- shared ------------------------------------------------------------------------------

    async def _take(self, request: Request) -> tuple[dict[str, Any], Behaviour]:
        body = orjson.loads(await request.body())
        self.calls += 1
        self._arrived.set()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        return body, self._next()

    @staticmethod
    async def _fail(b: Fail, error_shape: Callable[[str], dict[str, Any]]) -> Response:
        if b.hang_s:
            await asyncio.sleep(b.hang_s)
        headers = {} if b.retry_after is None else {"retry-after": f"{b.retry_after:g}"}
        return JSONResponse(error_shape(b.message), status_code=b.status, headers=headers)

    @staticmethod
    def _text(b: Reply, body: dict[str, Any]) -> str:
        return b.text(body) if callable(b.text) else b.text

    @staticmethod
    def _limit(text: str, max_tokens: Any) -> tuple[str, int]:
        """The answer cut to ``max_tokens`` (4 characters a token), and its tokens: like a
        real model, it never answers more than it was allowed."""
        if isinstance(max_tokens, int) and tokens_of(text) > max_tokens:
            return text[: max_tokens * 4], max_tokens
        return text, tokens_of(text)

    # -- OpenAI ------------------------------------------------------------------------------

    async def _openai(self, request: Request) -> Response:
        body, b = await self._take(request)
        if isinstance(b, Fail):
            return await self._fail(
                b, lambda m: {"error": {"message": m, "type": "server_error", "code": None}}
            )
        if b.delay_s:
            await asyncio.sleep(b.delay_s)
        text = self._text(b, body)
        text, out = self._limit(text, body.get("max_tokens"))
        prompt = "".join(str(m.get("content") or "") for m in body.get("messages", []))
        usage = {
            "prompt_tokens": tokens_of(prompt),
            "completion_tokens": out,
            "total_tokens": tokens_of(prompt) + out,
        }
        model = body.get("model", "fake")
        calls = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": name, "arguments": orjson.dumps(args).decode()},
            }
            for i, (name, args) in enumerate(b.tool_calls)
        ]
        finish = "tool_calls" if calls else "stop"
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": None if calls else text}
            if calls:
                message["tool_calls"] = calls
            return JSONResponse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage,
                }
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            doc = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
            return b"data: " + orjson.dumps(doc) + b"\n\n"

        async def events() -> AsyncIterator[bytes]:
            yield chunk({"role": "assistant", "content": ""})
            if calls:
                for i, c in enumerate(calls):
                    head = {"index": i, "id": c["id"], "type": "function"}
                    yield chunk(
                        {
                            "tool_calls": [
                                {
                                    **head,
                                    "function": {"name": c["function"]["name"], "arguments": ""},
                                }
                            ]
                        }
                    )
                    for part in pieces(c["function"]["arguments"], 8):
                        yield chunk({"tool_calls": [{"index": i, "function": {"arguments": part}}]})
            else:
                for n, part in enumerate(pieces(text)):
                    if b.cut_after is not None and n == b.cut_after:
                        raise ConnectionAbortedError("the fake provider cut the stream")
                    if b.token_delay_s:
                        await asyncio.sleep(b.token_delay_s)
                    yield chunk({"content": part})
            yield chunk({}, finish)
            if include_usage:
                doc = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "choices": [],
                    "usage": usage,
                }
                yield b"data: " + orjson.dumps(doc) + b"\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    # -- Anthropic ---------------------------------------------------------------------------

    async def _anthropic(self, request: Request) -> Response:
        body, b = await self._take(request)
        if isinstance(b, Fail):
            return await self._fail(
                b, lambda m: {"type": "error", "error": {"type": "api_error", "message": m}}
            )
        if b.delay_s:
            await asyncio.sleep(b.delay_s)
        text = self._text(b, body)
        text, tout = self._limit(text, body.get("max_tokens"))
        prompt = str(body.get("system") or "") + "".join(
            str(m.get("content")) for m in body.get("messages", [])
        )
        tin = tokens_of(prompt)
        model = body.get("model", "fake")
        blocks: list[dict[str, Any]] = [] if b.tool_calls else [{"type": "text", "text": text}]
        blocks += [
            {"type": "tool_use", "id": f"toolu_{i}", "name": name, "input": args}
            for i, (name, args) in enumerate(b.tool_calls)
        ]
        stop = "tool_use" if b.tool_calls else "end_turn"
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": blocks,
                    "stop_reason": stop,
                    "stop_sequence": None,
                    "usage": {"input_tokens": tin, "output_tokens": tout},
                }
            )

        def event(name: str, doc: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: ".encode() + orjson.dumps(doc) + b"\n\n"

        async def events() -> AsyncIterator[bytes]:
            yield event(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_fake",
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": tin, "output_tokens": 1},
                    },
                },
            )
            yield event("ping", {"type": "ping"})
            for i, block in enumerate(blocks):
                if block["type"] == "text":
                    start = {"type": "text", "text": ""}
                else:
                    start = {
                        "type": "tool_use",
                        "id": block["id"],
                        "name": block["name"],
                        "input": {},
                    }
                yield event(
                    "content_block_start",
                    {"type": "content_block_start", "index": i, "content_block": start},
                )
                if block["type"] == "text":
                    for part in pieces(block["text"]):
                        if b.token_delay_s:
                            await asyncio.sleep(b.token_delay_s)
                        yield event(
                            "content_block_delta",
                            {
                                "type": "content_block_delta",
                                "index": i,
                                "delta": {"type": "text_delta", "text": part},
                            },
                        )
                else:
                    for part in pieces(orjson.dumps(block["input"]).decode(), 8):
                        yield event(
                            "content_block_delta",
                            {
                                "type": "content_block_delta",
                                "index": i,
                                "delta": {"type": "input_json_delta", "partial_json": part},
                            },
                        )
                yield event("content_block_stop", {"type": "content_block_stop", "index": i})
            yield event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": tout},
                },
            )
            yield event("message_stop", {"type": "message_stop"})

        return StreamingResponse(events(), media_type="text/event-stream")
