"""The Python SDK: :class:`Client` (sync) and :class:`AsyncClient`, with job handles.

Both raise the same error classes as the server (``faena.NotFound``, ``faena.Conflict``, …)
with the server's message; a server that cannot be reached raises ``faena.Unavailable`` naming
its URL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import httpx
import orjson

from faena.client_config import resolve_config
from faena.client_models import (
    ApiKeyInfo,
    Job,
    JobPage,
    LogChunk,
    SseDecoder,
    WaitTimeout,
    batch_body,
    clean_params,
    decode,
    encode,
    error_from_response,
    job_body,
    key_body,
    parse_sse,
    unreachable,
    wait_slice,
    wait_timeout_error,
)

__all__ = [
    "ApiKeyInfo",
    "AsyncClient",
    "AsyncJobHandle",
    "Client",
    "Job",
    "JobHandle",
    "JobPage",
    "LogChunk",
    "WaitTimeout",
]

LONG_POLL_S = 30.0  # one GET ?wait= never waits longer; the server allows up to 60
STREAM_READ_TIMEOUT_S = 60.0  # the server sends a keepalive every 15 s
MAX_RECONNECTS = 5
LOG_PAGE = 1000
JSON_HEADERS = {"Content-Type": "application/json"}


def _headers(api_key: str | None) -> dict[str, str]:
    from faena import __version__

    headers = {"Accept": "application/json", "User-Agent": f"faena-python/{__version__}"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _states(state: str | Iterable[str] | None) -> str | None:
    if state is None or isinstance(state, str):
        return state
    return ",".join(state)


def _reconnect_delay(failures: int) -> float:
    return float(min(0.1 * 2**failures, 2.0))


class Client:
    """A synchronous client. ``server`` and ``api_key`` default as in
    :func:`faena.client_config.resolve_config`."""

    def __init__(
        self,
        server: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        config = resolve_config(server, api_key)
        self.server = config.server
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.server,
            headers=_headers(config.api_key),
            timeout=timeout,
            transport=transport,
        )

    # -- plumbing ---------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        read_timeout: float | None = None,
    ) -> tuple[int, Any]:
        content = None if body is None else encode(body)
        try:
            response = self._http.request(
                method,
                path,
                params=clean_params(params or {}),
                content=content,
                headers=JSON_HEADERS if content is not None else None,
                timeout=read_timeout or self.timeout,
            )
        except httpx.TransportError as e:
            raise unreachable(e, self.server, read_timeout or self.timeout) from None
        return response.status_code, decode(response, self.server)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._send(method, path, **kwargs)[1]

    # -- jobs -------------------------------------------------------------------------------

    def submit(
        self,
        kind: str,
        payload: Any = None,
        *,
        queue: str | None = None,
        priority: int = 0,
        labels: Mapping[str, str] | None = None,
        retries: int | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
        delay: float | None = None,
        run_at: datetime | float | None = None,
        idempotency_key: str | None = None,
        concurrency_key: str | None = None,
        concurrency_limit: int = 1,
    ) -> JobHandle:
        """Submit one job. ``timeout`` and ``delay`` are seconds; ``retries`` is the number of
        retries after the first attempt. With an ``idempotency_key`` already used, the handle
        is the first job's (``handle.created`` is then False)."""
        body = job_body(
            kind,
            payload,
            queue=queue,
            priority=priority,
            labels=labels,
            retries=retries,
            max_attempts=max_attempts,
            timeout=timeout,
            delay=delay,
            run_at=run_at,
            idempotency_key=idempotency_key,
            concurrency_key=concurrency_key,
            concurrency_limit=concurrency_limit,
        )
        status, data = self._send("POST", "/v1/jobs", body=body)
        return JobHandle(self, Job.from_json(data), created=status == 201)

    def submit_many(self, jobs: Iterable[Mapping[str, Any]]) -> list[JobHandle]:
        """Submit many jobs in one request; each dict has the fields of ``POST /v1/jobs``."""
        data = self._call("POST", "/v1/jobs/batch", body=batch_body(jobs))
        return [JobHandle(self, Job.from_json(item)) for item in data]

    def get(self, job_id: str) -> Job:
        return Job.from_json(self._call("GET", f"/v1/jobs/{job_id}"))

    def handle(self, job_id: str) -> JobHandle:
        """A handle on an existing job (fetches it once)."""
        return JobHandle(self, self.get(job_id), created=False)

    def _wait_once(self, job_id: str, seconds: float) -> Job:
        params = {"wait": f"{seconds:.3f}"} if seconds > 0 else None
        data = self._call(
            "GET", f"/v1/jobs/{job_id}", params=params, read_timeout=seconds + self.timeout
        )
        return Job.from_json(data)

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once it is terminal; ``WaitTimeout`` after ``timeout`` seconds."""
        return JobHandle(self, self.get(job_id), created=False).wait(timeout)

    def list_jobs(
        self,
        *,
        state: str | Iterable[str] | None = None,
        queue: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        params = {"state": _states(state), "queue": queue, "kind": kind, "limit": limit}
        data = self._call("GET", "/v1/jobs", params={**params, "cursor": cursor})
        return JobPage([Job.from_json(j) for j in data["jobs"]], data.get("next_cursor"))

    def cancel(self, job_id: str) -> Job:
        return Job.from_json(self._call("POST", f"/v1/jobs/{job_id}/cancel"))

    def retry(self, job_id: str) -> Job:
        return Job.from_json(self._call("POST", f"/v1/jobs/{job_id}/retry"))

    def logs(self, job_id: str, after: int = 0) -> list[LogChunk]:
        """Every chunk the job has written so far (after cursor ``after``)."""
        chunks: list[LogChunk] = []
        while True:
            data = self._call(
                "GET", f"/v1/jobs/{job_id}/logs", params={"after": after, "limit": LOG_PAGE}
            )
            page = [LogChunk.from_json(c) for c in data["chunks"]]
            chunks.extend(page)
            after = int(data.get("next_cursor", after))
            if len(page) < LOG_PAGE:
                return chunks

    def follow_logs(self, job_id: str, after: int = 0) -> Iterator[LogChunk]:
        """Chunks as they are written, until the job is terminal and all were sent.
        A dropped connection is resumed where it stopped (``Last-Event-ID``)."""
        failures = 0
        connected = False
        timeout = httpx.Timeout(self.timeout, read=STREAM_READ_TIMEOUT_S)
        while True:
            try:
                with self._http.stream(
                    "GET",
                    f"/v1/jobs/{job_id}/logs",
                    params={"follow": "true", "after": after},
                    headers={"Last-Event-ID": str(after)},
                    timeout=timeout,
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise error_from_response(response, self.server)
                    connected = True
                    for event in parse_sse(response.iter_lines()):
                        if event.event == "end":
                            return
                        if event.event == "log":
                            chunk = LogChunk.from_json(orjson.loads(event.data))
                            after, failures = chunk.cursor, 0
                            yield chunk
                failures += 1  # the stream ended without its `end` event
            except httpx.TransportError as e:
                failures += 1
                if not connected or failures > MAX_RECONNECTS:
                    raise unreachable(e, self.server, self.timeout) from None
            time.sleep(_reconnect_delay(failures))

    def stats(self) -> dict[str, Any]:
        """``{"by_state": {...}, "by_queue": {...}}`` for the caller's tenant."""
        data: dict[str, Any] = self._call("GET", "/v1/stats")
        return data

    def kinds(self) -> list[str]:
        return list(self._call("GET", "/v1/kinds")["kinds"])

    # -- keys -------------------------------------------------------------------------------

    def create_key(
        self,
        name: str,
        scopes: Iterable[str] | None = None,
        *,
        tenant: str | None = None,
        expires_at: datetime | float | None = None,
    ) -> ApiKeyInfo:
        """A new API key; its plaintext is in ``.key`` and is never shown again."""
        body = key_body(name, scopes, tenant, expires_at)
        return ApiKeyInfo.from_json(self._call("POST", "/v1/keys", body=body))

    def list_keys(self) -> list[ApiKeyInfo]:
        return [ApiKeyInfo.from_json(k) for k in self._call("GET", "/v1/keys")["keys"]]

    def revoke_key(self, key_id: str) -> ApiKeyInfo:
        return ApiKeyInfo.from_json(self._call("DELETE", f"/v1/keys/{key_id}"))

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<faena.Client {self.server}>"


class JobHandle:
    """A submitted job: ``wait()`` for it, read its ``result`` and ``logs()``."""

    def __init__(self, client: Client, job: Job, *, created: bool = True) -> None:
        self._client = client
        self._job = job
        self.created = created

    @property
    def id(self) -> str:
        return self._job.id

    @property
    def job(self) -> Job:
        """The job as last fetched (at submit, or by ``refresh``/``wait``)."""
        return self._job

    @property
    def result(self) -> Any:
        return self._job.result

    def refresh(self) -> Job:
        self._job = self._client.get(self.id)
        return self._job

    def wait(self, timeout: float | None = None) -> Job:
        """Block until the job is terminal and return it; raise :class:`WaitTimeout` when
        ``timeout`` seconds pass first (None: wait as long as it takes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        polled = False
        while not self._job.is_terminal:
            seconds = wait_slice(deadline, time.monotonic(), LONG_POLL_S)
            if polled and deadline is not None and seconds <= 0:
                raise wait_timeout_error(self._job, timeout)
            self._job = self._client._wait_once(self.id, seconds)
            polled = True
        return self._job

    def cancel(self) -> Job:
        self._job = self._client.cancel(self.id)
        return self._job

    def logs(self) -> list[LogChunk]:
        return self._client.logs(self.id)

    def follow_logs(self) -> Iterator[LogChunk]:
        return self._client.follow_logs(self.id)

    def __repr__(self) -> str:
        return f"<JobHandle {self.id} {self._job.kind} {self._job.state}>"


class AsyncClient:
    """The asyncio twin of :class:`Client`: the same methods, awaitable."""

    def __init__(
        self,
        server: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        config = resolve_config(server, api_key)
        self.server = config.server
        self.timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=self.server,
            headers=_headers(config.api_key),
            timeout=timeout,
            transport=transport,
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        read_timeout: float | None = None,
    ) -> tuple[int, Any]:
        content = None if body is None else encode(body)
        try:
            response = await self._http.request(
                method,
                path,
                params=clean_params(params or {}),
                content=content,
                headers=JSON_HEADERS if content is not None else None,
                timeout=read_timeout or self.timeout,
            )
        except httpx.TransportError as e:
            raise unreachable(e, self.server, read_timeout or self.timeout) from None
        return response.status_code, decode(response, self.server)

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self._send(method, path, **kwargs))[1]

    async def submit(
        self,
        kind: str,
        payload: Any = None,
        *,
        queue: str | None = None,
        priority: int = 0,
        labels: Mapping[str, str] | None = None,
        retries: int | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
        delay: float | None = None,
        run_at: datetime | float | None = None,
        idempotency_key: str | None = None,
        concurrency_key: str | None = None,
        concurrency_limit: int = 1,
    ) -> AsyncJobHandle:
        body = job_body(
            kind,
            payload,
            queue=queue,
            priority=priority,
            labels=labels,
            retries=retries,
            max_attempts=max_attempts,
            timeout=timeout,
            delay=delay,
            run_at=run_at,
            idempotency_key=idempotency_key,
            concurrency_key=concurrency_key,
            concurrency_limit=concurrency_limit,
        )
        status, data = await self._send("POST", "/v1/jobs", body=body)
        return AsyncJobHandle(self, Job.from_json(data), created=status == 201)

    async def submit_many(self, jobs: Iterable[Mapping[str, Any]]) -> list[AsyncJobHandle]:
        data = await self._call("POST", "/v1/jobs/batch", body=batch_body(jobs))
        return [AsyncJobHandle(self, Job.from_json(item)) for item in data]

    async def get(self, job_id: str) -> Job:
        return Job.from_json(await self._call("GET", f"/v1/jobs/{job_id}"))

    async def handle(self, job_id: str) -> AsyncJobHandle:
        return AsyncJobHandle(self, await self.get(job_id), created=False)

    async def _wait_once(self, job_id: str, seconds: float) -> Job:
        params = {"wait": f"{seconds:.3f}"} if seconds > 0 else None
        data = await self._call(
            "GET", f"/v1/jobs/{job_id}", params=params, read_timeout=seconds + self.timeout
        )
        return Job.from_json(data)

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        return await (await self.handle(job_id)).wait(timeout)

    async def list_jobs(
        self,
        *,
        state: str | Iterable[str] | None = None,
        queue: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        params = {"state": _states(state), "queue": queue, "kind": kind, "limit": limit}
        data = await self._call("GET", "/v1/jobs", params={**params, "cursor": cursor})
        return JobPage([Job.from_json(j) for j in data["jobs"]], data.get("next_cursor"))

    async def cancel(self, job_id: str) -> Job:
        return Job.from_json(await self._call("POST", f"/v1/jobs/{job_id}/cancel"))

    async def retry(self, job_id: str) -> Job:
        return Job.from_json(await self._call("POST", f"/v1/jobs/{job_id}/retry"))

    async def logs(self, job_id: str, after: int = 0) -> list[LogChunk]:
        chunks: list[LogChunk] = []
        while True:
            data = await self._call(
                "GET", f"/v1/jobs/{job_id}/logs", params={"after": after, "limit": LOG_PAGE}
            )
            page = [LogChunk.from_json(c) for c in data["chunks"]]
            chunks.extend(page)
            after = int(data.get("next_cursor", after))
            if len(page) < LOG_PAGE:
                return chunks

    async def follow_logs(self, job_id: str, after: int = 0) -> AsyncIterator[LogChunk]:
        failures = 0
        connected = False
        timeout = httpx.Timeout(self.timeout, read=STREAM_READ_TIMEOUT_S)
        while True:
            try:
                async with self._http.stream(
                    "GET",
                    f"/v1/jobs/{job_id}/logs",
                    params={"follow": "true", "after": after},
                    headers={"Last-Event-ID": str(after)},
                    timeout=timeout,
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise error_from_response(response, self.server)
                    connected = True
                    decoder = SseDecoder()
                    async for line in response.aiter_lines():
                        event = decoder.feed(line)
                        if event is None:
                            continue
                        if event.event == "end":
                            return
                        if event.event == "log":
                            chunk = LogChunk.from_json(orjson.loads(event.data))
                            after, failures = chunk.cursor, 0
                            yield chunk
                failures += 1
            except httpx.TransportError as e:
                failures += 1
                if not connected or failures > MAX_RECONNECTS:
                    raise unreachable(e, self.server, self.timeout) from None
            await asyncio.sleep(_reconnect_delay(failures))

    async def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._call("GET", "/v1/stats")
        return data

    async def kinds(self) -> list[str]:
        return list((await self._call("GET", "/v1/kinds"))["kinds"])

    async def create_key(
        self,
        name: str,
        scopes: Iterable[str] | None = None,
        *,
        tenant: str | None = None,
        expires_at: datetime | float | None = None,
    ) -> ApiKeyInfo:
        body = key_body(name, scopes, tenant, expires_at)
        return ApiKeyInfo.from_json(await self._call("POST", "/v1/keys", body=body))

    async def list_keys(self) -> list[ApiKeyInfo]:
        data = await self._call("GET", "/v1/keys")
        return [ApiKeyInfo.from_json(k) for k in data["keys"]]

    async def revoke_key(self, key_id: str) -> ApiKeyInfo:
        return ApiKeyInfo.from_json(await self._call("DELETE", f"/v1/keys/{key_id}"))

    async def aclose(self) -> None:
        await self._http.aclose()

    close = aclose

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<faena.AsyncClient {self.server}>"


class AsyncJobHandle:
    """The asyncio twin of :class:`JobHandle`."""

    def __init__(self, client: AsyncClient, job: Job, *, created: bool = True) -> None:
        self._client = client
        self._job = job
        self.created = created

    @property
    def id(self) -> str:
        return self._job.id

    @property
    def job(self) -> Job:
        return self._job

    @property
    def result(self) -> Any:
        return self._job.result

    async def refresh(self) -> Job:
        self._job = await self._client.get(self.id)
        return self._job

    async def wait(self, timeout: float | None = None) -> Job:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        polled = False
        while not self._job.is_terminal:
            seconds = wait_slice(deadline, loop.time(), LONG_POLL_S)
            if polled and deadline is not None and seconds <= 0:
                raise wait_timeout_error(self._job, timeout)
            self._job = await self._client._wait_once(self.id, seconds)
            polled = True
        return self._job

    async def cancel(self) -> Job:
        self._job = await self._client.cancel(self.id)
        return self._job

    async def logs(self) -> list[LogChunk]:
        return await self._client.logs(self.id)

    def follow_logs(self) -> AsyncIterator[LogChunk]:
        return self._client.follow_logs(self.id)

    def __repr__(self) -> str:
        return f"<AsyncJobHandle {self.id} {self._job.kind} {self._job.state}>"
