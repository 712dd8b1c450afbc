"""Stats stay equal to a count of the jobs themselves through every kind of change (Hypothesis).

SQLite and PostgreSQL keep the counts as the jobs change (migrations sqlite 0014, postgres
0015) instead of counting on every read; whatever sequence of submits, claims, completions,
retries, cancels, lease expiries and purges happened, ``stats`` must say what listing the jobs
says. Each example works in a tenant and queue of its own.
"""

from __future__ import annotations

import contextlib
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faena.domain.errors import Conflict, NotFound
from faena.domain.ids import new_id
from faena.domain.jobs import Job, JobSpec, JobState
from faena.ports.store import (
    CancelParams,
    CompleteParams,
    Completion,
    ExpireLeasesParams,
    JobStore,
    ListParams,
    PurgeParams,
    RetryParams,
)
from tests.contract.support import NOW, claim, submit

EXAMPLES = settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

OPERATIONS = st.lists(
    st.sampled_from(
        ["submit", "submit_other_queue", "claim", "succeed", "fail", "reschedule", "cancel",
         "retry", "expire", "purge"]
    ),
    min_size=1,
    max_size=30,
)


async def counted(store: JobStore, tenant: str) -> tuple[Counter[str], Counter[tuple[str, str]]]:
    by_state: Counter[str] = Counter()
    by_queue: Counter[tuple[str, str]] = Counter()
    cursor: str | None = None
    while True:
        page = await store.list_jobs(ListParams(tenant=tenant, limit=100, cursor=cursor))
        for job in page.jobs:
            by_state[job.state.value] += 1
            by_queue[(job.queue, job.state.value)] += 1
        if page.next_cursor is None:
            return by_state, by_queue
        cursor = page.next_cursor


@EXAMPLES
@given(operations=OPERATIONS)
async def test_stats_equal_a_count_of_the_jobs_after_any_changes(
    store: JobStore, operations: list[str]
) -> None:
    """Counts by state and by queue match the jobs after any sequence of changes."""
    tenant = f"t-{new_id()}"
    queues = (f"q-{new_id()}", f"r-{new_id()}")
    running: list[Job] = []
    finished: list[Job] = []
    now = NOW
    for op in operations:
        now += 1
        if op.startswith("submit"):
            queue = queues[op == "submit_other_queue"]
            await submit(store, JobSpec(kind="noop", tenant=tenant, queue=queue, max_attempts=2))
        elif op == "claim":
            running += await claim(store, 2, now=now, queues=frozenset(queues))
        elif op in ("succeed", "fail", "reschedule") and running:
            job = running.pop(0)
            state = {
                "succeed": JobState.SUCCEEDED,
                "fail": JobState.FAILED,
                "reschedule": JobState.SCHEDULED,
            }[op]
            completion = Completion(
                job_id=job.id,
                attempt=job.attempts,
                state=state,
                run_at=now + 1 if state is JobState.SCHEDULED else None,
            )
            finished += [
                j
                for j in await store.complete_many(CompleteParams([completion], now))
                if j.is_terminal
            ]
        elif op == "cancel" and running:
            job = running.pop(0)
            finished.append(await store.cancel(CancelParams(tenant, job.id, now)))
        elif op == "retry" and finished:
            job = finished.pop(0)
            with contextlib.suppress(Conflict, NotFound):  # purged or moved on meanwhile
                await store.retry(RetryParams(tenant, job.id, now))
        elif op == "expire":
            now += 3600  # every lease of this example has ended
            await store.expire_leases(ExpireLeasesParams(now=now))
            running.clear()
        elif op == "purge":
            await store.purge_finished(PurgeParams(before=now + 1))
            finished.clear()
    stats = await store.stats(tenant)
    by_state, by_queue = await counted(store, tenant)
    assert stats.by_state == {state.value: by_state[state.value] for state in JobState}
    assert {
        (queue, state): n for queue, states in stats.by_queue.items() for state, n in states.items()
        if n
    } == dict(by_queue)
