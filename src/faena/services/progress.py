"""Progress a running task reports (``faena.current_job().progress(0.5, "page 3 of 6")``).

A report is published as a ``job.progress`` event (live streams) and kept as the job's latest
progress, which ``GET /v1/jobs/{id}`` shows while the attempt runs. The board is in memory, per
server, and bounded: progress is advisory and frequent, so it is not written to the store (with
several servers, a job's ``progress`` field is on the server its worker reports to; the events
reach every live stream connected there).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

from faena.domain.events import Event
from faena.domain.jobs import Job, JobState
from faena.ports.bus import EventBus
from faena.ports.clock import Clock

MAX_MESSAGE = 500  # characters of a progress message kept and sent
MAX_JOBS = 10_000  # the board forgets the oldest reports beyond this


def clean_progress(fraction: Any, message: Any) -> tuple[float, str]:
    """A fraction in [0, 1] and a message of at most ``MAX_MESSAGE`` characters; TypeError or
    ValueError for what cannot be one."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise TypeError(f"progress must be a number between 0 and 1, not {fraction!r}")
    value = float(fraction)
    if math.isnan(value):
        raise ValueError("progress must be a number between 0 and 1, not NaN")
    return min(max(value, 0.0), 1.0), str(message or "")[:MAX_MESSAGE]


class ProgressBoard:
    def __init__(self, bus: EventBus, clock: Clock, *, limit: int = MAX_JOBS) -> None:
        self._bus = bus
        self._clock = clock
        self._limit = limit
        self._latest: OrderedDict[str, tuple[int, dict[str, Any]]] = OrderedDict()

    def report(self, job: Job, attempt: int, fraction: Any, message: Any) -> None:
        """Record and publish one report of ``attempt`` of ``job`` (bad values are dropped:
        a worker cannot break the server with them)."""
        try:
            value, text = clean_progress(fraction, message)
        except (TypeError, ValueError):
            return
        now = self._clock.now()
        data = {"fraction": value, "message": text, "attempt": attempt, "ts": now}
        self._latest[job.id] = (attempt, data)
        self._latest.move_to_end(job.id)
        while len(self._latest) > self._limit:
            self._latest.popitem(last=False)
        self._bus.publish(
            [Event(type="job.progress", tenant=job.tenant, job_id=job.id, data=data, ts=now)]
        )

    def of(self, job: Job) -> dict[str, Any] | None:
        """The latest report of the job's current attempt, while it runs."""
        found = self._latest.get(job.id)
        if found is None:
            return None
        if job.state is not JobState.RUNNING or found[0] != job.attempts:
            if job.is_terminal:
                del self._latest[job.id]
            return None
        return dict(found[1])
