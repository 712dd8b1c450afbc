"""Properties of claiming over random workloads (Hypothesis).

Each example works in a queue (and with concurrency keys) of its own, so examples sharing one
store never see each other.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faena.domain.ids import new_id
from faena.domain.jobs import JobSpec
from faena.ports.store import JobStore
from tests.contract.support import claim, submit

EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    database=None,  # no example database left in the working tree
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # examples use fresh queues
)


@EXAMPLES
@given(
    priorities=st.lists(st.integers(min_value=-3, max_value=3), min_size=1, max_size=25),
    batch=st.integers(min_value=1, max_value=7),
)
async def test_claims_follow_priority_then_submission_order(
    store: JobStore, priorities: list[int], batch: int
) -> None:
    """Claiming in batches of any size yields exactly sorted(priority desc, id asc)."""
    queue = f"q-{new_id()}"
    jobs = await submit(store, *(JobSpec(kind="noop", queue=queue, priority=p) for p in priorities))
    claimed = []
    while got := await claim(store, batch, queues=frozenset({queue})):
        assert len(got) <= batch
        claimed.extend(got)
    expected = sorted(jobs, key=lambda j: (-j.priority, j.id))
    assert [j.id for j in claimed] == [j.id for j in expected]


@EXAMPLES
@given(
    keys=st.lists(st.sampled_from([None, "a", "b", "c"]), min_size=1, max_size=25),
    limits=st.fixed_dictionaries({k: st.integers(1, 3) for k in "abc"}),
    batch=st.integers(min_value=1, max_value=10),
)
async def test_claims_take_every_job_the_limits_allow_and_no_more(
    store: JobStore, keys: list[str | None], limits: dict[str, int], batch: int
) -> None:
    """With nothing finishing, repeated claims run exactly min(limit, jobs) per key plus every
    unkeyed job, and never claim a job twice."""
    queue = f"q-{new_id()}"
    specs = [
        JobSpec(
            kind="noop",
            queue=queue,
            concurrency_key=None if key is None else f"{queue}/{key}",  # fresh per example
            concurrency_limit=limits[key] if key else 1,
        )
        for key in keys
    ]
    await submit(store, *specs)
    claimed = []
    while got := await claim(store, batch, queues=frozenset({queue})):
        claimed.extend(got)
    assert len({j.id for j in claimed}) == len(claimed)
    per_key = Counter(j.concurrency_key and j.concurrency_key[-1] for j in claimed)
    wanted = Counter(keys)
    assert per_key[None] == wanted[None]
    for key in "abc":
        assert per_key[key] == min(limits[key], wanted[key])
