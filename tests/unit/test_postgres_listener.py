"""Decoding the NOTIFY payloads of migration 0003 into events (no database needed)."""

from __future__ import annotations

from faena.adapters.postgres.listener import decode


def test_state_lines_become_state_events_and_queued_work_is_runnable() -> None:
    n = decode("faena1 abc\nqueued 0 acme j1\nrunning 2 acme j2", ts=5.0)

    assert n is not None
    assert n.origin == "abc"
    assert n.runnable
    assert [(e.type, e.tenant, e.job_id, e.data, e.ts) for e in n.events] == [
        ("job.state", "acme", "j1", {"state": "queued", "attempts": 0}, 5.0),
        ("job.state", "acme", "j2", {"state": "running", "attempts": 2}, 5.0),
    ]


def test_a_retry_scheduled_for_later_is_runnable_too() -> None:
    n = decode("faena1 abc\nscheduled 1 t j1", ts=0)
    assert n is not None and n.runnable


def test_finished_jobs_are_not_runnable_work() -> None:
    n = decode("faena1 abc\nsucceeded 1 t j1\ncancelled 1 t j2\nfailed 3 t j3", ts=0)
    assert n is not None and not n.runnable
    assert [e.data["state"] for e in n.events] == ["succeeded", "cancelled", "failed"]


def test_log_lines_become_log_events_with_the_last_sequence_number() -> None:
    n = decode("faena1 -\nlog 7 t j1", ts=1.0)

    assert n is not None and n.origin == "-"
    assert [(e.type, e.job_id, e.data) for e in n.events] == [("job.log", "j1", {"seq": 7})]


def test_payloads_of_another_format_are_ignored() -> None:
    assert decode("acme", ts=0) is None
    assert decode("faena9 x\nqueued 0 t j", ts=0) is None


def test_malformed_lines_are_skipped_not_fatal() -> None:
    n = decode("faena1 o\nqueued x t j1\nbogus 1 t j2\nshort line\n\nqueued 0 t j3", ts=0)
    assert n is not None
    assert [e.job_id for e in n.events] == ["j3"]
