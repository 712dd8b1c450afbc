"""Anthropic's Messages API: ``POST {base_url}/v1/messages`` with ``x-api-key`` and
``anthropic-version``; the system prompt is a top-level field, tool calls are ``tool_use``
content blocks, and streaming is typed SSE events (``message_start``, ``content_block_delta``,
``message_delta`` …)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson

from faena.adapters.llm._http import (
    loads_object,
    new_client,
    raise_for_status,
    sse_events,
    transport_error,
)
from faena.domain.llm import Message, ProviderError, ToolCall
from faena.ports.llm import ProviderCall, ProviderReply

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024  # the Messages API requires max_tokens


def _content(m: Message) -> Any:
    if m.role == "tool":
        return [{"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content or ""}]
    if not m.tool_calls:
        return m.content or ""
    blocks: list[dict[str, Any]] = []
    if m.content:
        blocks.append({"type": "text", "text": m.content})
    blocks.extend(
        {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in m.tool_calls
    )
    return blocks


def request_body(call: ProviderCall) -> dict[str, Any]:
    r = call.request
    system = "\n\n".join(m.content or "" for m in r.messages if m.role == "system")
    messages: list[dict[str, Any]] = []
    previous = ""
    for m in r.messages:
        if m.role == "system":
            continue
        if m.role == "tool" and previous == "tool":
            # The results of parallel tool calls go back in one user turn, one block each.
            messages[-1]["content"].extend(_content(m))
        else:
            role = "user" if m.role == "tool" else m.role
            messages.append({"role": role, "content": _content(m)})
        previous = m.role
    body: dict[str, Any] = {
        "model": call.model,
        "max_tokens": r.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": messages,
    }
    if system:
        body["system"] = system
    if r.temperature is not None:
        body["temperature"] = r.temperature
    if r.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in r.tools
        ]
    if call.stream:
        body["stream"] = True
    return body


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._client = client or new_client()

    async def complete(
        self, call: ProviderCall, on_token: Callable[[str], None] | None = None
    ) -> ProviderReply:
        url = call.config.base_url.rstrip("/") + "/v1/messages"
        headers = {"content-type": "application/json", "anthropic-version": API_VERSION}
        if call.api_key:
            headers["x-api-key"] = call.api_key
        timeout = call.timeout_s or call.config.timeout_s
        label = f"provider {call.config.name!r}"
        try:
            async with self._client.stream(
                "POST",
                url,
                content=orjson.dumps(request_body(call)),
                headers=headers,
                timeout=timeout,
            ) as response:
                await raise_for_status(label, response)
                if call.stream:
                    return await _read_stream(label, response, on_token)
                doc = loads_object((await response.aread()).decode())
        except httpx.HTTPError as exc:
            raise transport_error(label, exc) from None
        return _reply(label, doc)

    async def aclose(self) -> None:
        await self._client.aclose()


def _reply(label: str, doc: dict[str, Any]) -> ProviderReply:
    blocks = doc.get("content")
    if not isinstance(blocks, list):
        raise ProviderError(f"{label} answered without content", retryable=True)
    text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    calls = tuple(
        ToolCall(str(b.get("id", "")), str(b.get("name", "")), dict(b.get("input") or {}))
        for b in blocks
        if b.get("type") == "tool_use"
    )
    usage = doc.get("usage") or {}
    return ProviderReply(
        content=text if text or not calls else None,
        tool_calls=calls,
        tokens_in=int(usage.get("input_tokens") or 0),
        tokens_out=int(usage.get("output_tokens") or 0),
        finish_reason=doc.get("stop_reason"),
    )


async def _read_stream(
    label: str, response: httpx.Response, on_token: Callable[[str], None] | None
) -> ProviderReply:
    parts: list[str] = []
    blocks: dict[int, dict[str, Any]] = {}
    tokens_in = tokens_out = 0
    finish: str | None = None
    async for event, data in sse_events(response):
        doc = loads_object(data)
        kind = doc.get("type") or event
        if kind == "message_start":
            usage = (doc.get("message") or {}).get("usage") or {}
            tokens_in = int(usage.get("input_tokens") or 0)
            tokens_out = int(usage.get("output_tokens") or 0)
        elif kind == "content_block_start":
            block = doc.get("content_block") or {}
            if block.get("type") == "tool_use":
                blocks[int(doc.get("index", 0))] = {
                    "id": block.get("id", ""),
                    "name": block.get("name", ""),
                    "json": "",
                }
        elif kind == "content_block_delta":
            delta = doc.get("delta") or {}
            if delta.get("type") == "text_delta":
                text = delta.get("text", "")
                parts.append(text)
                if on_token is not None and text:
                    on_token(text)
            elif delta.get("type") == "input_json_delta":
                slot = blocks.get(int(doc.get("index", 0)))
                if slot is not None:
                    slot["json"] += delta.get("partial_json", "")
        elif kind == "message_delta":
            finish = (doc.get("delta") or {}).get("stop_reason") or finish
            usage = doc.get("usage") or {}
            tokens_out = int(usage.get("output_tokens") or tokens_out)
        elif kind == "error":
            err = doc.get("error") or {}
            raise ProviderError(f"{label} stream failed: {err.get('message', data)}")
        elif kind == "message_stop":
            break
    calls = tuple(
        ToolCall(b["id"], b["name"], loads_object(b["json"] or "{}"))
        for _, b in sorted(blocks.items())
    )
    return ProviderReply(
        content="".join(parts) if parts or not calls else None,
        tool_calls=calls,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        finish_reason=finish,
    )
