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
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

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
from faena.client_workflows import (
    AppliedWorkflow,
    Run,
    RunPage,
    RunWaitTimeout,
    StepRun,
    apply_request,
    run_body,
    run_timeout_error,
)

if TYPE_CHECKING:
    from faena.workflow_builder import Workflow

__all__ = [
    "ApiKeyInfo",
    "AppliedWorkflow",
    "AsyncClient",
    "AsyncJobHandle",
    "Client",
    "Job",
    "JobHandle",
    "JobPage",
    "LogChunk",
    "Run",
    "RunPage",
    "RunWaitTimeout",
    "StepRun",
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
        resources: Mapping[str, float] | None = None,
    ) -> JobHandle:
        """Submit one job. ``timeout`` and ``delay`` are seconds; ``retries`` is the number of
        retries after the first attempt. With an ``idempotency_key`` already used, the handle
        is the first job's (``handle.created`` is then False). ``resources``
        (``{"cpu": 2, "memory_mb": 512}``) is what one attempt needs of a worker: it is placed
        only where that much is free."""
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
            resources=resources,
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
        parent_id: str | None = None,
    ) -> JobPage:
        """Newest first; ``parent_id``: the children of that job (an agent's tool calls)."""
        params = {"state": _states(state), "queue": queue, "kind": kind, "limit": limit}
        params["parent_id"] = parent_id
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

    # -- workflows --------------------------------------------------------------------------

    def apply_workflow(
        self, definition: str | Path | Mapping[str, Any] | Workflow, *, name: str | None = None
    ) -> AppliedWorkflow:
        """Store ``definition`` (YAML text, a file ``Path``, a mapping or a
        :class:`faena.Workflow`) as a new version; an identical one gives ``created=False``."""
        path, body, headers = apply_request(definition, name)
        try:
            response = self._http.put(path, content=body, headers=headers)
        except httpx.TransportError as e:
            raise unreachable(e, self.server, self.timeout) from None
        return AppliedWorkflow.from_json(decode(response, self.server))

    def run_workflow(
        self,
        name: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        wait: bool = False,
        timeout: float | None = None,
        version: int | None = None,
        idempotency_key: str | None = None,
    ) -> Run:
        """Start a run of ``name`` (its latest version unless ``version``). With ``wait``,
        return it once finished (``RunWaitTimeout`` after ``timeout`` seconds)."""
        body = run_body(inputs, version, idempotency_key)
        run = Run.from_json(self._call("POST", f"/v1/workflows/{name}/runs", body=body))
        return self.wait_run(run.id, timeout, run=run) if wait else run

    def run_workflow_many(self, name: str, runs: Iterable[Mapping[str, Any]]) -> list[Run]:
        """Start many runs of ``name`` in one request; each dict has the fields of ``POST
        /v1/workflows/{name}/runs`` (``inputs``, ``version``, ``idempotency_key``). All are
        validated before any starts; the runs come back in order."""
        data = self._call("POST", f"/v1/workflows/{name}/runs/batch", body=list(runs))
        return [Run.from_json(item) for item in data]

    def get_run(self, run_id: str) -> Run:
        return Run.from_json(self._call("GET", f"/v1/runs/{run_id}"))

    def wait_run(self, run_id: str, timeout: float | None = None, *, run: Run | None = None) -> Run:
        """The run once terminal; ``RunWaitTimeout`` (with the last state seen) after
        ``timeout`` seconds (None: as long as it takes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        current = run or self.get_run(run_id)
        polled = False
        while not current.is_terminal:
            seconds = wait_slice(deadline, time.monotonic(), LONG_POLL_S)
            if polled and deadline is not None and seconds <= 0:
                raise run_timeout_error(current, timeout)
            params = {"wait": f"{seconds:.3f}"} if seconds > 0 else None
            data = self._call(
                "GET", f"/v1/runs/{run_id}", params=params, read_timeout=seconds + self.timeout
            )
            current, polled = Run.from_json(data), True
        return current

    def list_runs(
        self,
        *,
        workflow: str | None = None,
        state: str | Iterable[str] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """Runs, newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
        params = {"workflow": workflow, "state": _states(state), "limit": limit, "cursor": cursor}
        data = self._call("GET", "/v1/runs", params=params)
        return RunPage([Run.from_json(r) for r in data["runs"]], data.get("next_cursor"))

    def cancel_run(self, run_id: str) -> Run:
        return Run.from_json(self._call("POST", f"/v1/runs/{run_id}/cancel"))

    def retry_run(self, run_id: str) -> Run:
        """Re-run a failed or cancelled run from the steps that did not succeed."""
        return Run.from_json(self._call("POST", f"/v1/runs/{run_id}/retry"))

    # -- keys -------------------------------------------------------------------------------

    def create_key(
        self,
        name: str,
        scopes: Iterable[str] | None = None,
        *,
        tenant: str | None = None,
        expires_at: datetime | float | None = None,
        rate_limit: int | None = None,
        rate_limit_bulk: int | None = None,
        rate_limit_health: int | None = None,
    ) -> ApiKeyInfo:
        """A new API key; its plaintext is in ``.key`` and is never shown again. The rate
        limits are requests per minute of its own (None: the server's)."""
        body = key_body(
            name,
            scopes,
            tenant,
            expires_at,
            rate_limit,
            rate_limit_bulk=rate_limit_bulk,
            rate_limit_health=rate_limit_health,
        )
        return ApiKeyInfo.from_json(self._call("POST", "/v1/keys", body=body))

    def list_keys(self) -> list[ApiKeyInfo]:
        return [ApiKeyInfo.from_json(k) for k in self._call("GET", "/v1/keys")["keys"]]

    def revoke_key(self, key_id: str) -> ApiKeyInfo:
        return ApiKeyInfo.from_json(self._call("DELETE", f"/v1/keys/{key_id}"))

    # -- secrets (values go in, never come out) ---------------------------------------------

    def set_secret(self, name: str, value: str) -> dict[str, Any]:
        """Create or replace the secret ``name``; the answer has its version, not its value."""
        found: dict[str, Any] = self._call("PUT", f"/v1/secrets/{name}", body={"value": value})
        return found

    def list_secrets(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._call("GET", "/v1/secrets")["secrets"]
        return found

    def delete_secret(self, name: str) -> None:
        self._call("DELETE", f"/v1/secrets/{name}")

    # -- mailbox watches (issue 9) ----------------------------------------------------------

    def add_mail_watch(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Watch a mailbox; ``spec`` as in docs/mail.md (the password is a secret's name)."""
        found: dict[str, Any] = self._call("POST", "/v1/mail/watches", body=dict(spec))
        return found

    def list_mail_watches(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._call("GET", "/v1/mail/watches")["watches"]
        return found

    def get_mail_watch(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self._call("GET", f"/v1/mail/watches/{name}")
        return found

    def remove_mail_watch(self, name: str) -> None:
        self._call("DELETE", f"/v1/mail/watches/{name}")

    def mail_messages(
        self, name: str, *, state: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._call(
            "GET", f"/v1/mail/watches/{name}/messages", params={"state": state, "limit": limit}
        )["messages"]
        return found

    # -- the LLM layer (issue 8): providers, policies, budgets, usage ----------------------

    def llm(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """``/v1/llm/{path}`` (``faena llm``): the JSON answer."""
        query = {k: v for k, v in params.items() if v is not None} or None
        return self._call(method, f"/v1/llm/{path}", params=query, body=body)

    # -- artefacts (streamed both ways: faena.client_artefacts) ---------------------------

    def put_artefact(
        self, path: str | Path, *, name: str | None = None, content_type: str | None = None
    ) -> dict[str, Any]:
        """Upload a file; the answer is the artefact's metadata (refer to it by ``id``)."""
        from faena.client_artefacts import put_artefact

        return put_artefact(self, Path(path), name=name, content_type=content_type)

    def download_artefact(self, artefact_id: str, out: Any) -> int:
        """Write an artefact's bytes to the binary file ``out``; return how many."""
        from faena.client_artefacts import download_artefact

        return download_artefact(self, artefact_id, out)

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
        resources: Mapping[str, float] | None = None,
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
            resources=resources,
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
        parent_id: str | None = None,
    ) -> JobPage:
        """Newest first; ``parent_id``: the children of that job (an agent's tool calls)."""
        params = {"state": _states(state), "queue": queue, "kind": kind, "limit": limit}
        params["parent_id"] = parent_id
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

    # -- workflows --------------------------------------------------------------------------

    async def apply_workflow(
        self, definition: str | Path | Mapping[str, Any] | Workflow, *, name: str | None = None
    ) -> AppliedWorkflow:
        """Store ``definition`` (YAML text, a file ``Path``, a mapping or a
        :class:`faena.Workflow`) as a new version; an identical one gives ``created=False``."""
        path, body, headers = apply_request(definition, name)
        try:
            response = await self._http.put(path, content=body, headers=headers)
        except httpx.TransportError as e:
            raise unreachable(e, self.server, self.timeout) from None
        return AppliedWorkflow.from_json(decode(response, self.server))

    async def run_workflow(
        self,
        name: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        wait: bool = False,
        timeout: float | None = None,
        version: int | None = None,
        idempotency_key: str | None = None,
    ) -> Run:
        """Start a run of ``name`` (its latest version unless ``version``). With ``wait``,
        return it once finished (``RunWaitTimeout`` after ``timeout`` seconds)."""
        body = run_body(inputs, version, idempotency_key)
        run = Run.from_json(await self._call("POST", f"/v1/workflows/{name}/runs", body=body))
        return await self.wait_run(run.id, timeout, run=run) if wait else run

    async def run_workflow_many(self, name: str, runs: Iterable[Mapping[str, Any]]) -> list[Run]:
        data = await self._call("POST", f"/v1/workflows/{name}/runs/batch", body=list(runs))
        return [Run.from_json(item) for item in data]

    async def get_run(self, run_id: str) -> Run:
        return Run.from_json(await self._call("GET", f"/v1/runs/{run_id}"))

    async def wait_run(
        self, run_id: str, timeout: float | None = None, *, run: Run | None = None
    ) -> Run:
        """The run once terminal; ``RunWaitTimeout`` (with the last state seen) after
        ``timeout`` seconds (None: as long as it takes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        current = run or await self.get_run(run_id)
        polled = False
        while not current.is_terminal:
            seconds = wait_slice(deadline, time.monotonic(), LONG_POLL_S)
            if polled and deadline is not None and seconds <= 0:
                raise run_timeout_error(current, timeout)
            params = {"wait": f"{seconds:.3f}"} if seconds > 0 else None
            data = await self._call(
                "GET", f"/v1/runs/{run_id}", params=params, read_timeout=seconds + self.timeout
            )
            current, polled = Run.from_json(data), True
        return current

    async def list_runs(
        self,
        *,
        workflow: str | None = None,
        state: str | Iterable[str] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """Runs, newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
        params = {"workflow": workflow, "state": _states(state), "limit": limit, "cursor": cursor}
        data = await self._call("GET", "/v1/runs", params=params)
        return RunPage([Run.from_json(r) for r in data["runs"]], data.get("next_cursor"))

    async def cancel_run(self, run_id: str) -> Run:
        return Run.from_json(await self._call("POST", f"/v1/runs/{run_id}/cancel"))

    async def retry_run(self, run_id: str) -> Run:
        """Re-run a failed or cancelled run from the steps that did not succeed."""
        return Run.from_json(await self._call("POST", f"/v1/runs/{run_id}/retry"))

    async def create_key(
        self,
        name: str,
        scopes: Iterable[str] | None = None,
        *,
        tenant: str | None = None,
        expires_at: datetime | float | None = None,
        rate_limit: int | None = None,
        rate_limit_bulk: int | None = None,
        rate_limit_health: int | None = None,
    ) -> ApiKeyInfo:
        body = key_body(
            name,
            scopes,
            tenant,
            expires_at,
            rate_limit,
            rate_limit_bulk=rate_limit_bulk,
            rate_limit_health=rate_limit_health,
        )
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
