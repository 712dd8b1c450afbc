"""Between domain objects and SQLite rows: JSON columns via orjson, states as text."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import orjson

from faena.adapters.sqlite import queries
from faena.domain.auth import ApiKey
from faena.domain.errors import ValidationError
from faena.domain.jobs import Job, JobState
from faena.domain.logs import LogChunk, LogStream
from faena.ports.store import StoredLogChunk

_STATES = {state.value: state for state in JobState}
_STREAMS = {stream.value: stream for stream in LogStream}

JobRow = tuple[Any, ...]


def dump_json(value: Any, what: str) -> str:
    """JSON text for a column; ``what`` names the field in the error a caller sees."""
    try:
        return orjson.dumps(value).decode()
    except TypeError as e:  # orjson.JSONEncodeError is a TypeError
        raise ValidationError(f"{what} is not JSON-serializable: {e}") from None


def dump_optional_json(value: Any, what: str) -> str | None:
    return None if value is None else dump_json(value, what)


def load_json(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def job_row(job: Job, payload: str | None) -> JobRow:
    """The INSERT parameters for a new job, in ``queries.JOB_COLUMNS`` order."""
    return (
        job.id,
        job.tenant,
        job.kind,
        job.queue,
        job.state.value,
        payload,
        job.priority,
        orjson.dumps(job.labels).decode() if job.labels else None,
        job.max_attempts,
        job.attempts,
        job.created_at,
        job.run_at,
        job.timeout_s,
        None,
        job.error,
        job.worker_id,
        job.started_at,
        job.finished_at,
        job.lease_expires_at,
        job.idempotency_key,
        job.concurrency_key,
        job.concurrency_limit,
        job.backoff_s,
        job.backoff_max_s,
        job.traceparent,
        None if job.resources is None else orjson.dumps(job.resources).decode(),
        job.parent_id,
    )


def job_from_row(r: JobRow) -> Job:
    """A job from a row selected with ``queries.JOB_COLUMNS`` (or returned with
    ``queries.RETURNING_JOB``): by position, as this runs for every job on the hot path."""
    return Job(
        r[0],
        r[1],
        r[2],
        r[3],
        _STATES[r[4]],
        None if r[5] is None else orjson.loads(r[5]),
        r[6],
        {} if r[7] is None else orjson.loads(r[7]),
        r[8],
        r[9],
        r[10],
        r[11],
        r[12],
        None if r[13] is None else orjson.loads(r[13]),
        r[14],
        r[15],
        r[16],
        r[17],
        r[18],
        r[19],
        r[20],
        r[21],
        r[22],
        r[23],
        r[24],
        None if r[25] is None else orjson.loads(r[25]),
        r[26],
    )


if tuple(f.name for f in fields(Job)) != queries.JOB_FIELDS:  # pragma: no cover
    raise RuntimeError("queries.JOB_FIELDS no longer matches the fields of Job")


def _real(value: float | None) -> float | None:
    # RETURNING hands back a whole REAL as an int (before column affinity): undo that.
    return None if value is None else float(value)


def log_row(chunk: LogChunk) -> tuple[Any, ...]:
    return (
        chunk.tenant,
        chunk.job_id,
        chunk.seq,
        chunk.stream.value,
        chunk.data,
        chunk.ts,
        chunk.attempt,
    )


def log_from_row(r: tuple[Any, ...]) -> StoredLogChunk:
    chunk = LogChunk(
        job_id=r[1],
        seq=r[2],
        stream=_STREAMS[r[3]],
        data=r[4],
        ts=float(r[5]),
        tenant=r[6],
        attempt=r[7],
    )
    return StoredLogChunk(chunk=chunk, cursor=r[0])


def api_key_row(key: ApiKey) -> tuple[Any, ...]:
    return (
        key.id,
        key.tenant,
        key.name,
        key.prefix,
        key.key_hash,
        orjson.dumps(list(key.scopes)).decode(),
        key.created_at,
        key.expires_at,
        key.revoked_at,
        key.rate_limit,
        key.rate_limit_bulk,
        key.rate_limit_health,
    )


def api_key_from_row(r: tuple[Any, ...]) -> ApiKey:
    return ApiKey(
        id=r[0],
        tenant=r[1],
        name=r[2],
        prefix=r[3],
        key_hash=r[4],
        scopes=tuple(orjson.loads(r[5])),
        created_at=float(r[6]),
        expires_at=_real(r[7]),
        revoked_at=_real(r[8]),
        rate_limit=r[9],
        rate_limit_bulk=r[10],
        rate_limit_health=r[11],
    )
