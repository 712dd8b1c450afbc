"""Retry policy: exponential backoff with full jitter, capped. Pure; randomness is injected."""

from __future__ import annotations

from collections.abc import Callable

from faena.domain.jobs import Job, JobState


def backoff_delay(attempt: int, base_s: float, max_s: float, rand: Callable[[], float]) -> float:
    """Delay before attempt ``attempt + 1`` after ``attempt`` failed (1-based).

    The ceiling doubles with each attempt (``base * 2**(attempt-1)``, capped at ``max_s``); the
    delay is drawn uniformly from the upper half of it, so retries spread out but never fire
    immediately after a failure.
    """
    ceiling = min(max_s, base_s * 2.0 ** min(attempt - 1, 62))
    return ceiling / 2 + float(rand()) * ceiling / 2


def after_failure(job: Job, now: float, rand: Callable[[], float]) -> tuple[JobState, float | None]:
    """The state a failed attempt leads to, and when to run again if it is retried."""
    if job.attempts_left:
        delay = backoff_delay(job.attempts, job.backoff_s, job.backoff_max_s, rand)
        if delay <= 0:
            return JobState.QUEUED, None
        return JobState.SCHEDULED, now + delay
    return JobState.FAILED, None
