"""Rows to domain objects and back: JSON with orjson, jobs read by column position."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from faena.domain.auth import ApiKey
from faena.domain.errors import ValidationError
from faena.domain.jobs import Job, JobState
from faena.domain.logs import LogChunk, LogStream
from faena.ports.store import StoredLogChunk

_STATES = {s.value: s for s in JobState}
_STREAMS = {s.value: s for s in LogStream}


def encode_jsonb(value: Any) -> bytes:
    """asyncpg binary codec for ``jsonb``: a version byte, then the JSON text."""
    return b"\x01" + orjson.dumps(value)


def decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


def json_text(value: Any, what: str) -> str | None:
    """JSON text for a ``text[]`` parameter cast to ``jsonb`` in SQL; ``None`` stays SQL NULL."""
    if value is None:
        return None
    try:
        return orjson.dumps(value).decode()
    except TypeError as error:
        raise ValidationError(f"{what} must be JSON-serializable: {error}") from error


def row_to_job(r: Sequence[Any]) -> Job:
    """A job from a row selected with ``queries.JOB_COLUMNS`` (same positions)."""
    return Job(
        id=r[0],
        tenant=r[1],
        kind=r[2],
        queue=r[3],
        state=_STATES[r[4]],
        payload=r[5],
        priority=r[6],
        labels=r[7],
        max_attempts=r[8],
        attempts=r[9],
        created_at=r[10],
        run_at=r[11],
        timeout_s=r[12],
        result=r[13],
        error=r[14],
        worker_id=r[15],
        started_at=r[16],
        finished_at=r[17],
        lease_expires_at=r[18],
        idempotency_key=r[19],
        concurrency_key=r[20],
        concurrency_limit=r[21],
        backoff_s=r[22],
        backoff_max_s=r[23],
        traceparent=r[24],
        resources=r[25],
        parent_id=r[26],
    )


def row_to_log(r: Sequence[Any]) -> StoredLogChunk:
    chunk = LogChunk(
        job_id=r[1],
        tenant=r[2],
        seq=r[3],
        stream=_STREAMS[r[4]],
        data=r[5],
        ts=r[6],
        attempt=r[7],
    )
    return StoredLogChunk(chunk=chunk, cursor=r[0])


def row_to_api_key(r: Sequence[Any]) -> ApiKey:
    return ApiKey(
        id=r[0],
        tenant=r[1],
        name=r[2],
        prefix=r[3],
        key_hash=r[4],
        scopes=tuple(r[5]),
        created_at=r[6],
        expires_at=r[7],
        revoked_at=r[8],
        rate_limit=r[9],
        rate_limit_bulk=r[10],
        rate_limit_health=r[11],
    )


async def init_connection(conn: Any) -> None:
    """Pool ``init``: JSON columns decoded and encoded with orjson."""
    for name in ("jsonb", "json"):
        binary = name == "jsonb"
        await conn.set_type_codec(
            name,
            schema="pg_catalog",
            encoder=encode_jsonb if binary else (lambda v: orjson.dumps(v).decode()),
            decoder=decode_jsonb if binary else orjson.loads,
            format="binary" if binary else "text",
        )


def submit_columns(jobs: Sequence[Job]) -> tuple[list[Any], ...]:
    """The ``unnest`` arrays of ``queries.INSERT_JOBS``, in parameter order ($1..$16)."""
    return (
        [j.id for j in jobs],
        [j.tenant for j in jobs],
        [j.kind for j in jobs],
        [j.queue for j in jobs],
        [j.state.value for j in jobs],
        [json_text(j.payload, "payload") for j in jobs],
        [j.priority for j in jobs],
        [orjson.dumps(j.labels).decode() for j in jobs],
        [j.max_attempts for j in jobs],
        [j.run_at for j in jobs],
        [j.timeout_s for j in jobs],
        [j.idempotency_key for j in jobs],
        [j.concurrency_key for j in jobs],
        [j.concurrency_limit for j in jobs],
        [j.backoff_s for j in jobs],
        [j.backoff_max_s for j in jobs],
    )


def submit_resources(jobs: Sequence[Job]) -> list[str | None]:
    """``$19`` of ``queries.INSERT_JOBS``: declared resources as JSON text, or NULL."""
    return [None if j.resources is None else orjson.dumps(j.resources).decode() for j in jobs]


def insert_jobs_args(jobs: Sequence[Job], now: float) -> tuple[Any, ...]:
    """Every parameter of ``queries.INSERT_JOBS`` ($1..$24), in order: use this rather than
    the pieces, so a new column reaches every caller."""
    return (
        *submit_columns(jobs),
        now,
        submit_traceparents(jobs),
        submit_resources(jobs),
        submit_parents(jobs),
        *submit_claims(jobs),
    )


def submit_claims(jobs: Sequence[Job]) -> tuple[list[Any], ...]:
    """``$21..$24`` of ``queries.INSERT_JOBS``: attempts, worker, start and lease of a job
    submitted straight to a free local slot (``StartNow``); 0 and NULLs otherwise."""
    return (
        [j.attempts for j in jobs],
        [j.worker_id for j in jobs],
        [j.started_at for j in jobs],
        [j.lease_expires_at for j in jobs],
    )


def submit_parents(jobs: Sequence[Job]) -> list[str | None]:
    """``$20`` of ``queries.INSERT_JOBS``: the spawning job's id, or NULL."""
    return [j.parent_id for j in jobs]


def submit_traceparents(jobs: Sequence[Job]) -> list[str | None]:
    """``$18`` of ``queries.INSERT_JOBS`` (after ``now``, ``$17``)."""
    return [j.traceparent for j in jobs]
