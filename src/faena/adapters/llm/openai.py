"""The OpenAI-compatible Chat Completions wire protocol (OpenAI, Groq, OpenRouter, Mistral,
vLLM, llama.cpp, Ollama …): ``POST {base_url}/chat/completions``, SSE streaming with
``stream_options.include_usage`` so a streamed answer still reports its tokens."""

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


def _message(m: Message) -> dict[str, Any]:
    doc: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        doc["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": orjson.dumps(c.arguments).decode()},
            }
            for c in m.tool_calls
        ]
    if m.tool_call_id is not None:
        doc["tool_call_id"] = m.tool_call_id
    return doc


def request_body(call: ProviderCall) -> dict[str, Any]:
    r = call.request
    body: dict[str, Any] = {"model": call.model, "messages": [_message(m) for m in r.messages]}
    if r.temperature is not None:
        body["temperature"] = r.temperature
    if r.max_tokens is not None:
        body["max_tokens"] = r.max_tokens
    if r.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in r.tools
        ]
    if r.response_schema is not None and not r.tools:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": r.response_schema},
        }
    if call.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    doc = loads_object(raw or "{}")
    return doc


class OpenAIProvider:
    """One shared connection pool for every OpenAI-compatible endpoint."""

    name = "openai"

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._client = client or new_client()

    async def complete(
        self, call: ProviderCall, on_token: Callable[[str], None] | None = None
    ) -> ProviderReply:
        url = call.config.base_url.rstrip("/") + "/chat/completions"
        headers = {"content-type": "application/json"}
        if call.api_key:
            headers["authorization"] = f"Bearer {call.api_key}"
        timeout = call.timeout_s or call.config.timeout_s
        body = orjson.dumps(request_body(call))
        label = f"provider {call.config.name!r}"
        try:
            async with self._client.stream(
                "POST", url, content=body, headers=headers, timeout=timeout
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
    choices = doc.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ProviderError(f"{label} answered without choices", retryable=True)
    msg = choices[0].get("message") or {}
    usage = doc.get("usage") or {}
    calls = tuple(
        ToolCall(
            str(c.get("id", "")),
            str((c.get("function") or {}).get("name", "")),
            _arguments((c.get("function") or {}).get("arguments")),
        )
        for c in msg.get("tool_calls") or ()
    )
    return ProviderReply(
        content=msg.get("content"),
        tool_calls=calls,
        tokens_in=int(usage.get("prompt_tokens") or 0),
        tokens_out=int(usage.get("completion_tokens") or 0),
        finish_reason=choices[0].get("finish_reason"),
    )


async def _read_stream(
    label: str, response: httpx.Response, on_token: Callable[[str], None] | None
) -> ProviderReply:
    parts: list[str] = []
    tools: dict[int, dict[str, Any]] = {}
    tokens_in = tokens_out = 0
    finish: str | None = None
    async for _, data in sse_events(response):
        if data.strip() == "[DONE]":
            break
        chunk = loads_object(data)
        if "error" in chunk:
            err = chunk["error"]
            text = err.get("message") if isinstance(err, dict) else str(err)
            raise ProviderError(f"{label} stream failed: {text}", retryable=True)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            tokens_in = int(usage.get("prompt_tokens") or tokens_in)
            tokens_out = int(usage.get("completion_tokens") or tokens_out)
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                parts.append(text)
                if on_token is not None:
                    on_token(text)
            for tc in delta.get("tool_calls") or ():
                slot = tools.setdefault(int(tc.get("index", 0)), {"id": "", "name": "", "args": ""})
                slot["id"] = tc.get("id") or slot["id"]
                fn = tc.get("function") or {}
                slot["name"] = fn.get("name") or slot["name"]
                slot["args"] += fn.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    calls = tuple(
        ToolCall(t["id"], t["name"], _arguments(t["args"])) for _, t in sorted(tools.items())
    )
    return ProviderReply(
        content="".join(parts) if parts or not calls else None,
        tool_calls=calls,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        finish_reason=finish,
    )
