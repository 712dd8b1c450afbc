"""Between the worker protocol's messages and faena's domain objects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from faena.domain.jobs import Job
from faena.domain.logs import LogStream
from faena.protocol.v1 import worker_pb2 as pb

PROTOCOL_VERSION = 1

STREAM_TO_PB = {
    LogStream.STDOUT: pb.STREAM_STDOUT,
    LogStream.STDERR: pb.STREAM_STDERR,
    LogStream.SYSTEM: pb.STREAM_SYSTEM,
}
STREAM_FROM_PB = {v: k for k, v in STREAM_TO_PB.items()}


def assignment(job: Job, mask: Sequence[str] = ()) -> pb.ServerMessage:
    """``job`` as sent to its worker; ``mask``: the secret values in its payload."""
    return pb.ServerMessage(
        assignment=pb.Assignment(
            job_id=job.id,
            attempt=job.attempts,
            tenant=job.tenant,
            kind=job.kind,
            queue=job.queue,
            payload_json=orjson.dumps(job.payload),
            labels=job.labels,
            timeout_s=job.timeout_s or 0.0,
            max_attempts=job.max_attempts,
            created_at=job.created_at,
            mask=list(mask),
            traceparent=job.traceparent or "",
        )
    )


def job_of(a: pb.Assignment, now: float) -> Job:
    from faena.domain.jobs import JobState

    return Job(
        id=a.job_id,
        tenant=a.tenant,
        kind=a.kind,
        queue=a.queue,
        state=JobState.RUNNING,
        payload=orjson.loads(a.payload_json) if a.payload_json else None,
        priority=0,
        labels=dict(a.labels),
        max_attempts=a.max_attempts,
        attempts=a.attempt,
        created_at=a.created_at,
        timeout_s=a.timeout_s or None,
        started_at=now,
        traceparent=a.traceparent or None,
    )


def loads_result(data: bytes) -> Any:
    return orjson.loads(data) if data else None
