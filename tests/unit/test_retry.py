"""Retry policy: exponential backoff with jitter, capped; attempts are bounded."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from faena.domain.jobs import Job, JobSpec, JobState
from faena.domain.retry import after_failure, backoff_delay


def _job(attempts: int, max_attempts: int, backoff_s: float = 1.0) -> Job:
    spec = JobSpec(kind="noop", max_attempts=max_attempts, backoff_s=backoff_s)
    return Job.from_spec("id", spec, now=0.0).evolve(attempts=attempts, state=JobState.RUNNING)


def test_backoff_doubles_with_each_attempt() -> None:
    top = [backoff_delay(a, 1.0, 1000.0, lambda: 0.999999) for a in (1, 2, 3, 4)]
    assert [round(d) for d in top] == [1, 2, 4, 8]


def test_backoff_is_capped() -> None:
    assert backoff_delay(40, 1.0, 60.0, lambda: 0.999999) <= 60.0


@given(st.integers(1, 100), st.floats(0, 1, exclude_max=True))
def test_backoff_lies_in_the_upper_half_of_its_ceiling(attempt: int, r: float) -> None:
    ceiling = min(300.0, 2.0 ** (attempt - 1))
    assert ceiling / 2 <= backoff_delay(attempt, 1.0, 300.0, lambda: r) <= ceiling


def test_a_failed_attempt_with_attempts_left_is_scheduled_after_backoff() -> None:
    state, run_at = after_failure(_job(attempts=1, max_attempts=3), now=100.0, rand=lambda: 0.0)
    assert state is JobState.SCHEDULED
    assert run_at == 100.5


def test_the_last_failed_attempt_fails_the_job() -> None:
    assert after_failure(_job(attempts=3, max_attempts=3), now=100.0, rand=lambda: 0.5) == (
        JobState.FAILED,
        None,
    )


def test_zero_backoff_requeues_at_once() -> None:
    job = _job(attempts=1, max_attempts=2, backoff_s=0.0)
    assert after_failure(job, now=1.0, rand=lambda: 0.5) == (JobState.QUEUED, None)
