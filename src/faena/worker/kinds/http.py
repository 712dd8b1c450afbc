"""The ``http`` kind: one request through a shared ``httpx.AsyncClient``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from faena.worker.kinds.payloads import HttpSpec
from faena.worker.outcome import Outcome, describe, failed, seconds

MAX_BODY_BYTES = 1024 * 1024


class HttpKind:
    """Runs ``http`` jobs. The client and its connection pool are created on first use."""

    def __init__(self, *, max_connections: int = 1000) -> None:
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=min(100, max_connections)
        )
        self._client: httpx.AsyncClient | None = None

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(limits=self._limits)
        return self._client

    async def run(self, spec: HttpSpec) -> Outcome:
        """Non-2xx fails the attempt (retryable for 5xx and 429); the response is the result."""
        url = _shown(spec.url)
        request: dict[str, Any] = {"headers": spec.headers, "timeout": spec.timeout_s}
        if spec.has_json:
            request["json"] = spec.json
        elif spec.body is not None:
            request["content"] = spec.body.encode()
        client = self._get_client()
        try:
            async with client.stream(
                spec.method, spec.url, follow_redirects=spec.follow_redirects, **request
            ) as response:
                body, truncated = await _read_bounded(response)
        except httpx.TimeoutException:
            return failed(f"HTTP request to {url} timed out after {seconds(spec.timeout_s)}")
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            return failed(f"HTTP request to {url} is invalid: {describe(exc)}", retryable=False)
        except httpx.HTTPError as exc:
            return failed(f"HTTP request to {url} failed: {describe(exc)}")

        result = _result(response, body, truncated)
        status = response.status_code
        if 200 <= status < 300:
            return Outcome(succeeded=True, result=result)
        retryable = status >= 500 or status in (408, 429)
        return failed(f"HTTP {status} from {url}", result=result, retryable=retryable)

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


async def _read_bounded(response: httpx.Response) -> tuple[bytes, bool]:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        room = MAX_BODY_BYTES - len(body)
        if len(chunk) > room:
            body += chunk[:room]
            return bytes(body), True
        body += chunk
    return bytes(body), False


def _result(response: httpx.Response, body: bytes, truncated: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"status": response.status_code, "headers": dict(response.headers)}
    if truncated:
        result["truncated"] = True
    elif "json" in response.headers.get("content-type", "") and body:
        try:
            result["json"] = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
        else:
            return result
    try:
        result["text"] = body.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        result["text"] = body.decode("utf-8", errors="replace")
    return result


def _shown(url: str) -> str:
    """The URL without credentials, for error messages."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))
