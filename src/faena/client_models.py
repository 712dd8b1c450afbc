"""What the SDK hands back (``Job``, ``LogChunk``, ``JobPage``, ``ApiKeyInfo``) and the pieces
both clients share: request bodies, error mapping, and a Server-Sent Events parser."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from faena.domain import errors
from faena.domain.errors import FaenaError

TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
ERROR_BY_CODE: dict[str, type[FaenaError]] = {
    "invalid": errors.ValidationError,
    "invalid_json": errors.ValidationError,
    "unsupported_media_type": errors.ValidationError,
    "not_found": errors.NotFound,
    "conflict": errors.Conflict,
    "unauthorized": errors.Unauthorized,
    "forbidden": errors.Forbidden,
    "payload_too_large": errors.PayloadTooLarge,
    "unavailable": errors.Unavailable,
}


class WaitTimeout(FaenaError):
    """``JobHandle.wait(timeout)`` ran out of time; ``job`` is the last state seen."""

    code = "wait_timeout"

    def __init__(self, message: str, job: Job | None = None) -> None:
        super().__init__(message)
        self.job = job


def parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return datetime.fromisoformat(str(value))


@dataclass(frozen=True, slots=True)
class Job:
    """A job as the server last reported it."""

    id: str
    tenant: str
    kind: str
    queue: str
    state: str
    payload: Any
    result: Any
    error: str | None
    attempts: int
    max_attempts: int
    priority: int
    labels: dict[str, str]
    worker_id: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    run_at: datetime | None = None
    timeout_s: float | None = None
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    resources: dict[str, float] | None = None  # what an attempt needs of a worker, if declared
    progress: dict[str, Any] | None = None  # {"fraction", "message"} a running task reported
    parent_id: str | None = None  # the job that spawned it (an agent's tool call)

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == "succeeded"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        return cls(
            id=data["id"],
            tenant=data.get("tenant", ""),
            kind=data["kind"],
            queue=data.get("queue", ""),
            state=data["state"],
            payload=data.get("payload"),
            result=data.get("result"),
            error=data.get("error"),
            attempts=data.get("attempts", 0),
            max_attempts=data.get("max_attempts", 1),
            priority=data.get("priority", 0),
            labels=dict(data.get("labels") or {}),
            worker_id=data.get("worker_id"),
            created_at=parse_time(data.get("created_at")),
            started_at=parse_time(data.get("started_at")),
            finished_at=parse_time(data.get("finished_at")),
            run_at=parse_time(data.get("run_at")),
            timeout_s=data.get("timeout_s"),
            idempotency_key=data.get("idempotency_key"),
            concurrency_key=data.get("concurrency_key"),
            resources=data.get("resources"),
            progress=data.get("progress"),
            parent_id=data.get("parent_id"),
        )


@dataclass(frozen=True, slots=True)
class LogChunk:
    """A piece of a job's output. ``cursor`` orders chunks; resume reading after it."""

    cursor: int
    seq: int
    attempt: int
    stream: str
    data: str
    ts: datetime | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LogChunk:
        return cls(
            cursor=data["cursor"],
            seq=data.get("seq", 0),
            attempt=data.get("attempt", 0),
            stream=data.get("stream", "stdout"),
            data=data.get("data", ""),
            ts=parse_time(data.get("ts")),
        )


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """An API key's metadata; ``key`` is the plaintext, present only right after creation."""

    id: str
    tenant: str
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime | None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    key: str | None = field(default=None, repr=False)
    rate_limit: int | None = None  # requests per minute; None: the server's default
    rate_limit_bulk: int | None = None  # bulk requests per minute; None: derived or default
    rate_limit_health: int | None = None  # health checks per minute; None: the address's

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApiKeyInfo:
        return cls(
            id=data["id"],
            tenant=data.get("tenant", ""),
            name=data.get("name", ""),
            prefix=data.get("prefix", ""),
            scopes=tuple(data.get("scopes") or ()),
            created_at=parse_time(data.get("created_at")),
            expires_at=parse_time(data.get("expires_at")),
            revoked_at=parse_time(data.get("revoked_at")),
            key=data.get("key"),
            rate_limit=data.get("rate_limit"),
            rate_limit_bulk=data.get("rate_limit_bulk"),
            rate_limit_health=data.get("rate_limit_health"),
        )


# -- requests ---------------------------------------------------------------------------------


def time_value(value: datetime | float | None) -> str | float | None:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.isoformat()
    return value


def job_body(
    kind: str,
    payload: Any,
    *,
    queue: str | None,
    priority: int,
    labels: Mapping[str, str] | None,
    retries: int | None,
    max_attempts: int | None,
    timeout: float | None,
    delay: float | None,
    run_at: datetime | float | None,
    idempotency_key: str | None,
    concurrency_key: str | None,
    concurrency_limit: int,
    resources: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The ``POST /v1/jobs`` body for :meth:`Client.submit`'s arguments (unset ones omitted)."""
    body: dict[str, Any] = {"kind": kind, "payload": payload}
    optional = {
        "queue": queue,
        "priority": priority or None,
        "labels": dict(labels) if labels else None,
        "retries": retries,
        "max_attempts": max_attempts,
        "timeout_s": timeout,
        "delay_s": delay,
        "run_at": time_value(run_at),
        "idempotency_key": idempotency_key,
        "concurrency_key": concurrency_key,
        "concurrency_limit": None if concurrency_limit == 1 else concurrency_limit,
        "resources": dict(resources) if resources else None,
    }
    body.update((k, v) for k, v in optional.items() if v is not None)
    return body


def batch_body(jobs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``submit_many`` takes dicts with the fields of ``POST /v1/jobs``; datetimes are sent as
    ISO 8601."""
    out = []
    for job in jobs:
        item = dict(job)
        if isinstance(item.get("run_at"), datetime):
            item["run_at"] = time_value(item["run_at"])
        out.append(item)
    return out


def key_body(
    name: str,
    scopes: Iterable[str] | None,
    tenant: str | None,
    expires_at: datetime | float | None,
    rate_limit: int | None = None,
    *,
    rate_limit_bulk: int | None = None,
    rate_limit_health: int | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    if rate_limit is not None:
        body["rate_limit"] = rate_limit
    if rate_limit_bulk is not None:
        body["rate_limit_bulk"] = rate_limit_bulk
    if rate_limit_health is not None:
        body["rate_limit_health"] = rate_limit_health
    if scopes is not None:
        body["scopes"] = list(scopes)
    if tenant is not None:
        body["tenant"] = tenant
    if expires_at is not None:
        body["expires_at"] = time_value(expires_at)
    return body


def encode(body: Any) -> bytes:
    try:
        return orjson.dumps(body)
    except TypeError as e:
        raise errors.ValidationError(f"the request is not JSON-serializable: {e}") from None


def clean_params(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def wait_slice(deadline: float | None, now: float, longest: float) -> float:
    """How long the next long-poll may wait: at most ``longest``, never past the deadline."""
    if deadline is None:
        return longest
    return max(0.0, min(longest, deadline - now))


def wait_timeout_error(job: Job, timeout: float | None) -> WaitTimeout:
    shown = "0" if not timeout else f"{timeout:g}"
    return WaitTimeout(f"job {job.id} is still {job.state} after {shown}s", job)


# -- responses --------------------------------------------------------------------------------


def error_from_response(response: httpx.Response, server: str) -> FaenaError:
    """The domain error the server sent (same class, same message), or a generic one."""
    try:
        body = orjson.loads(response.content)
        code = str(body["error"]["code"])
        message = str(body["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        if response.status_code >= 500:
            return errors.Unavailable(f"faena at {server} answered HTTP {response.status_code}")
        return FaenaError(f"faena at {server} answered HTTP {response.status_code}")
    cls = ERROR_BY_CODE.get(code, FaenaError)
    return cls(message)


def decode(response: httpx.Response, server: str) -> Any:
    if response.status_code >= 400:
        raise error_from_response(response, server)
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise FaenaError(f"faena at {server} sent a response that is not JSON") from None


def unreachable(
    error: httpx.TransportError, server: str, timeout: float | None
) -> errors.Unavailable:
    if isinstance(error, httpx.TimeoutException):
        after = f" within {timeout:g}s" if timeout else ""
        return errors.Unavailable(f"faena at {server} did not answer{after}")
    text = str(error) or type(error).__name__
    if "refused" in text.lower():
        text = "connection refused"
    return errors.Unavailable(f"cannot reach faena at {server}: {text}")


# -- Server-Sent Events -----------------------------------------------------------------------


@dataclass(slots=True)
class SseEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None


class SseDecoder:
    """Turns the lines of a ``text/event-stream`` into events (comments are skipped)."""

    def __init__(self) -> None:
        self._current = SseEvent()
        self._data: list[str] = []

    def feed(self, line: str) -> SseEvent | None:
        if not line:
            event = None
            if self._data or self._current.id is not None or self._current.event != "message":
                self._current.data = "\n".join(self._data)
                event = self._current
            self._current, self._data = SseEvent(), []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._current.event = value
        elif name == "id":
            self._current.id = value
        return None


def parse_sse(lines: Iterable[str]) -> Iterator[SseEvent]:
    """Events from the lines of a ``text/event-stream`` (comments and retry hints skipped)."""
    decoder = SseDecoder()
    for line in lines:
        event = decoder.feed(line)
        if event is not None:
            yield event
