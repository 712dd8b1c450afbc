"""The job model and its state machine."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faena.domain.errors import Conflict, ValidationError
from faena.domain.ids import new_id
from faena.domain.jobs import (
    TERMINAL_STATES,
    TRANSITIONS,
    Job,
    JobSpec,
    JobState,
    check_transition,
    labels_match,
)


def test_terminal_states_have_no_way_out_but_a_manual_retry() -> None:
    for state in TERMINAL_STATES:
        assert TRANSITIONS[state] <= {JobState.QUEUED}
    assert TRANSITIONS[JobState.SUCCEEDED] == frozenset()


def test_a_finished_job_cannot_be_cancelled() -> None:
    with pytest.raises(Conflict, match="job is succeeded; it cannot become cancelled"):
        check_transition(JobState.SUCCEEDED, JobState.CANCELLED)


def test_a_running_job_may_be_retried_after_backoff() -> None:
    check_transition(JobState.RUNNING, JobState.SCHEDULED)


def test_a_job_with_a_future_run_at_starts_scheduled() -> None:
    job = Job.from_spec("id", JobSpec(kind="noop", run_at=110.0), now=100.0)
    assert job.state is JobState.SCHEDULED
    assert job.run_at == 110.0


def test_a_job_with_a_past_run_at_starts_queued() -> None:
    job = Job.from_spec("id", JobSpec(kind="noop", run_at=90.0), now=100.0)
    assert job.state is JobState.QUEUED
    assert job.run_at is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": ""}, "kind must be a non-empty string"),
        ({"kind": "has space"}, "kind must not contain spaces"),
        ({"priority": 10**9}, "priority must be between"),
        ({"max_attempts": 0}, "max_attempts must be between 1"),
        ({"timeout_s": -1.0}, "timeout_s must be > 0"),
        ({"concurrency_limit": 0}, "concurrency_limit must be between 1"),
        ({"idempotency_key": ""}, "keys must be 1 to"),
        ({"labels": {"": "x"}}, "labels must map non-empty strings"),
    ],
)
def test_a_spec_out_of_range_is_refused_with_a_precise_message(
    changes: dict[str, object], message: str
) -> None:
    spec = JobSpec(kind="noop")
    fields = {**{f: getattr(spec, f) for f in spec.__dataclass_fields__}, **changes}
    with pytest.raises(ValidationError, match=message):
        JobSpec(**fields).validate()  # type: ignore[arg-type]


def test_labels_match_when_the_worker_offers_every_required_label() -> None:
    assert labels_match({"gpu": "true"}, {"gpu": "true", "region": "eu"})
    assert not labels_match({"gpu": "true"}, {"gpu": "false"})
    assert labels_match({}, {})


def test_ids_sort_by_creation() -> None:
    ids = [new_id() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_ids_are_uuid_version_7() -> None:
    import uuid

    assert uuid.UUID(new_id()).version == 7


@given(st.lists(st.sampled_from(list(JobState)), min_size=2, max_size=8))
def test_no_walk_through_the_machine_leaves_a_succeeded_job(path: list[JobState]) -> None:
    state = JobState.SUCCEEDED
    for target in path:
        with pytest.raises(Conflict):
            check_transition(state, target)


def test_ids_made_in_a_batch_sort_after_earlier_ones_and_are_unique() -> None:
    from faena.domain.ids import new_ids

    first = new_id()
    batch = new_ids(10_000)
    assert batch == sorted(batch)
    assert first < batch[0]
    assert len(set(batch)) == len(batch)


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # 3.12+: fork() with threads
def test_a_forked_child_never_repeats_its_parents_random_bits() -> None:
    """Ids take their random bits from a block of OS randomness; a child made by fork() must
    not hand out the rest of the block its parent will use."""
    import os

    new_id()  # the parent holds a partly used block
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.write(write, ",".join(new_id() for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 1 << 16).decode().split(",")
    os.close(read)
    parent = [new_id() for _ in range(50)]
    assert not {i[-16:] for i in child} & {i[-16:] for i in parent}
