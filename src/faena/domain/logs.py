"""Log chunks: what a job printed, in order."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class LogStream(enum.StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"
    SYSTEM = "system"  # faena's own notes on the job (started, retried, timed out)


@dataclass(frozen=True, slots=True)
class LogChunk:
    """A piece of a job's output. ``seq`` increases by one per chunk within a job attempt-span."""

    job_id: str
    seq: int
    stream: LogStream
    data: str
    ts: float
    tenant: str = "default"
    attempt: int = 0
