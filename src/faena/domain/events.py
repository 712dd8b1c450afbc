"""Events: what happened, published after the store committed it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    """A fact for live streams: ``job.state`` (a job changed state), ``job.log`` (new output),
    ``worker.*`` (a worker connected, reported its load, drained or left), ``audit.written``
    (entries were added to the audit log), ... ``tenant`` is whose streams may see it."""

    type: str
    tenant: str
    job_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    ts: float = 0.0
