"""The retention service: purges what finished before now - keep_s, batch by batch."""

from __future__ import annotations

import pytest

from faena.adapters.memory.store import MemoryStore
from faena.config import Settings
from faena.domain.errors import ValidationError
from faena.domain.ids import new_id
from faena.domain.jobs import JobSpec, JobState
from faena.ports.store import ClaimParams, CompleteParams, Completion, SubmitParams
from faena.services.retention import DAY_S, Retention


class FakeClock:
    def __init__(self, now: float) -> None:
        self.t = now

    def now(self) -> float:
        return self.t


async def finish(store: MemoryStore, n: int, at: float) -> None:
    specs = [JobSpec(kind="noop") for _ in range(n)]
    await store.submit_many(SubmitParams(specs, [new_id() for _ in specs], at))
    jobs = await store.claim(ClaimParams(worker_id="w", limit=n, lease_s=30, now=at))
    done = [Completion(j.id, j.attempts, JobState.SUCCEEDED) for j in jobs]
    await store.complete_many(CompleteParams(done, at))


async def test_purge_once_deletes_everything_older_than_the_period_in_batches() -> None:
    """Old jobs all go, over several bounded batches; recent ones stay."""
    store = MemoryStore()
    clock = FakeClock(100 * DAY_S)
    await finish(store, 25, at=clock.now() - 31 * DAY_S)
    await finish(store, 4, at=clock.now() - 29 * DAY_S)
    retention = Retention(store, clock, keep_s=30 * DAY_S, batch=10, pause_s=0)
    assert await retention.purge_once() == 25
    assert (await store.stats("default")).by_state["succeeded"] == 4
    assert await retention.purge_once() == 0
    assert retention.purged_total == 25


def test_retention_days_defaults_to_30_and_zero_keeps_forever() -> None:
    assert Settings.from_env({}).retention_days == 30
    assert Settings.from_env({"FAENA_RETENTION_DAYS": "0"}).retention_days == 0
    assert Settings.from_env({"FAENA_RETENTION_DAYS": "0.5"}).retention_days == 0.5
    with pytest.raises(ValidationError, match="retention_days"):
        Settings.from_env({"FAENA_RETENTION_DAYS": "-1"})


def test_the_runtime_runs_retention_only_when_a_period_is_set() -> None:
    from faena.bootstrap import build_runtime

    kept = build_runtime(
        Settings(database_url="memory://", retention_days=0, audit_retention_days=0)
    )
    assert kept.retention is None
    purged = build_runtime(Settings(database_url="memory://"))
    assert purged.retention is not None
    audit_only = build_runtime(Settings(database_url="memory://", retention_days=0))
    assert audit_only.retention is not None  # the audit log keeps its 90 days


async def test_old_audit_entries_are_purged_with_the_jobs() -> None:
    from faena.domain.audit import AuditEntry
    from faena.ports.audit import AuditQuery
    from faena.services.audit import AuditLog

    store = MemoryStore()
    clock = FakeClock(100 * DAY_S)
    audit = AuditLog(store, clock)
    await audit.record(AuditEntry(tenant="a", action="old", at=5 * DAY_S))
    await audit.record(AuditEntry(tenant="a", action="recent", at=95 * DAY_S))
    retention = Retention(store, clock, keep_s=DAY_S, audit=audit, audit_keep_s=90 * DAY_S)
    assert await retention.purge_audit_once() == 1
    left = await store.list_audit(AuditQuery(tenant="a"))
    assert [e.action for e in left.entries] == ["recent"]
