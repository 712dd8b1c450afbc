"""The API's data transfer objects, separate from the domain types.

Inputs are pydantic models validated strictly (no ``"5"`` for 5, no ``true`` for 1, no NaN or
infinity); outputs are plain dicts rendered by orjson, with the models below describing them in
the OpenAPI document. Times go out as ISO 8601 UTC strings and come in as ISO 8601 strings or
epoch seconds.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, model_validator

from faena.domain.auth import ApiKey
from faena.domain.jobs import (
    MAX_ATTEMPTS_LIMIT,
    MAX_DELAY_S,
    MAX_NAME_LENGTH,
    MAX_PRIORITY,
    MAX_TIMEOUT_S,
    Job,
)
from faena.ports.store import StoredLogChunk
from faena.services.orchestrator import MAX_BATCH, JobRequest

MAX_LABELS = 100
MAX_LABEL_VALUE = 1000
MAX_SCOPES = 50

STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


def to_epoch(value: Any) -> Any:
    """ISO 8601 text (naive means UTC) or epoch seconds → epoch seconds; anything else is left
    for the float validator to refuse."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                "must be an ISO 8601 time such as 2030-01-01T09:00:00Z, or epoch seconds"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def iso(ts: float | None) -> str | None:
    if ts is None or not math.isfinite(ts):
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH)]
Key = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH)]
Time = Annotated[float, BeforeValidator(to_epoch), Field(ge=0, le=1e11)]
LabelKey = Annotated[str, Field(min_length=1, max_length=100)]
LabelValue = Annotated[str, Field(max_length=MAX_LABEL_VALUE)]


class Resources(BaseModel):
    """What a job needs of a worker (remote placement reserves it on the worker)."""

    model_config = STRICT

    cpu: Annotated[float, Field(ge=0, le=4096)] = 0
    memory_mb: Annotated[int, Field(ge=0, le=64 * 1024 * 1024)] = 0


class JobIn(BaseModel):
    """A job to submit. ``retries`` is an alternative to ``max_attempts`` (= retries + 1)."""

    model_config = STRICT

    kind: Name
    payload: Any = None
    queue: Name | None = None
    priority: Annotated[int, Field(ge=-MAX_PRIORITY, le=MAX_PRIORITY)] = 0
    labels: Annotated[dict[LabelKey, LabelValue], Field(max_length=MAX_LABELS)] = Field(
        default_factory=dict
    )
    max_attempts: Annotated[int, Field(ge=1, le=MAX_ATTEMPTS_LIMIT)] | None = None
    retries: Annotated[int, Field(ge=0, le=MAX_ATTEMPTS_LIMIT - 1)] | None = None
    timeout_s: Annotated[float, Field(gt=0, le=MAX_TIMEOUT_S)] | None = None
    delay_s: Annotated[float, Field(ge=0, le=MAX_DELAY_S)] | None = None
    run_at: Time | None = None
    idempotency_key: Key | None = None
    concurrency_key: Key | None = None
    concurrency_limit: Annotated[int, Field(ge=1, le=10_000)] = 1
    backoff_s: Annotated[float, Field(ge=0, le=86_400)] | None = None
    backoff_max_s: Annotated[float, Field(ge=0, le=7 * 86_400)] | None = None
    resources: Resources | None = Field(
        default=None, description='what the job needs of a worker: {"cpu": 1, "memory_mb": 512}'
    )

    @model_validator(mode="after")
    def _one_way_to_say_attempts(self) -> JobIn:
        if self.retries is not None and self.max_attempts is not None:
            raise ValueError("give retries or max_attempts, not both")
        if self.delay_s is not None and self.run_at is not None:
            raise ValueError("give delay_s or run_at, not both")
        return self

    def to_request(self) -> JobRequest:
        max_attempts = self.max_attempts
        if self.retries is not None:
            max_attempts = self.retries + 1
        return JobRequest(
            kind=self.kind,
            payload=self.payload,
            queue=self.queue,
            priority=self.priority,
            labels=self.labels,
            max_attempts=max_attempts,
            timeout_s=self.timeout_s,
            delay_s=self.delay_s,
            run_at=self.run_at,
            idempotency_key=self.idempotency_key,
            concurrency_key=self.concurrency_key,
            concurrency_limit=self.concurrency_limit,
            backoff_s=self.backoff_s,
            backoff_max_s=self.backoff_max_s,
            resources=None if self.resources is None else self.resources.model_dump(),
        )


JobList = Annotated[list[JobIn], Field(min_length=1, max_length=MAX_BATCH)]


class BatchIn(BaseModel):
    model_config = STRICT

    jobs: JobList


class KeyIn(BaseModel):
    """A new API key. ``tenant`` defaults to the caller's; ``scopes`` to read and write jobs."""

    model_config = STRICT

    name: Name
    scopes: Annotated[list[Name], Field(min_length=1, max_length=MAX_SCOPES)] = Field(
        default_factory=lambda: ["jobs:read", "jobs:write"]
    )
    tenant: Name | None = None
    expires_at: Time | None = None
    rate_limit: Annotated[int, Field(ge=1, le=1_000_000)] | None = Field(
        default=None, description="requests per minute for this key (default: the server's)"
    )
    rate_limit_bulk: Annotated[int, Field(ge=1, le=1_000_000)] | None = Field(
        default=None,
        description="bulk requests (POST /v1/jobs/batch) per minute for this key (default: a "
        "tenth of rate_limit when it is set, else the server's)",
    )
    rate_limit_health: Annotated[int, Field(ge=1, le=1_000_000)] | None = Field(
        default=None,
        description="health checks (/healthz, /readyz, /metrics) per minute presenting this "
        "key, from a bucket of its own (default: the client address's health bucket)",
    )


JOB_IN = TypeAdapter(JobIn)
JOB_LIST_IN = TypeAdapter(JobList)
BATCH_IN = TypeAdapter(BatchIn)
KEY_IN = TypeAdapter(KeyIn)


# -- outputs ----------------------------------------------------------------------------------


def job_to_json(job: Job) -> dict[str, Any]:
    out = {
        "id": job.id,
        "tenant": job.tenant,
        "kind": job.kind,
        "queue": job.queue,
        "state": job.state.value,
        "payload": job.payload,
        "result": job.result,
        "error": job.error,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "priority": job.priority,
        "labels": job.labels,
        "worker_id": job.worker_id,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "run_at": iso(job.run_at),
        "timeout_s": job.timeout_s,
        "idempotency_key": job.idempotency_key,
        "concurrency_key": job.concurrency_key,
    }
    if job.resources is not None:  # only when declared: the v1 job object stays as it was
        out["resources"] = job.resources
    if job.parent_id is not None:  # only for a spawned job (an agent's tool call)
        out["parent_id"] = job.parent_id
    return out


def chunk_to_json(stored: StoredLogChunk) -> dict[str, Any]:
    chunk = stored.chunk
    return {
        "cursor": stored.cursor,
        "seq": chunk.seq,
        "attempt": chunk.attempt,
        "stream": chunk.stream.value,
        "data": chunk.data,
        "ts": iso(chunk.ts),
    }


def key_to_json(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "tenant": key.tenant,
        "name": key.name,
        "prefix": key.prefix,
        "scopes": list(key.scopes),
        "created_at": iso(key.created_at),
        "expires_at": iso(key.expires_at),
        "revoked_at": iso(key.revoked_at),
        "rate_limit": key.rate_limit,
        "rate_limit_bulk": key.rate_limit_bulk,
        "rate_limit_health": key.rate_limit_health,
    }


class JobOut(BaseModel):
    id: str
    tenant: str
    kind: str
    queue: str
    state: str = Field(description="queued, scheduled, running, succeeded, failed or cancelled")
    payload: Any
    result: Any
    error: str | None
    attempts: int
    max_attempts: int
    priority: int
    labels: dict[str, str]
    worker_id: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    run_at: str | None
    timeout_s: float | None
    idempotency_key: str | None
    concurrency_key: str | None
    resources: dict[str, float] | None = None
    parent_id: str | None = Field(
        default=None, description="the job that spawned this one (an agent's tool call)"
    )
    placement: str | None = Field(
        default=None, description="why a queued job is not placed yet (single job reads only)"
    )


class JobPageOut(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")


class LogChunkOut(BaseModel):
    cursor: int
    seq: int
    attempt: int
    stream: str
    data: str
    ts: str


class LogPageOut(BaseModel):
    chunks: list[LogChunkOut]
    next_cursor: int = Field(description="pass as ?after= to read on")


class StatsOut(BaseModel):
    by_state: dict[str, int]
    by_queue: dict[str, dict[str, int]]


class KindsOut(BaseModel):
    kinds: list[str]


class KeyOut(BaseModel):
    id: str
    tenant: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    rate_limit: int | None = Field(description="requests per minute; null: the server default")
    rate_limit_bulk: int | None = Field(
        default=None, description="bulk requests per minute; null: derived or the server default"
    )
    rate_limit_health: int | None = Field(
        default=None, description="health checks per minute; null: the address's health bucket"
    )


class CreatedKeyOut(KeyOut):
    key: str = Field(description="the plaintext key; shown once, never again")


class KeyListOut(BaseModel):
    keys: list[KeyOut]


class ErrorBody(BaseModel):
    code: str
    message: str
    request_id: str


class ErrorOut(BaseModel):
    error: ErrorBody


OPENAPI_COMPONENTS: dict[str, Any] = {}


def body_schema(adapter: TypeAdapter[Any]) -> dict[str, Any]:
    """An ``openapi_extra`` request body for routes that read and validate their body
    themselves (to authenticate first and to parse with orjson). Models it refers to are
    collected in ``OPENAPI_COMPONENTS`` for the app to publish."""
    schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
    OPENAPI_COMPONENTS.update(schema.pop("$defs", {}))
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
