"""Batch reads the workflow engine uses: many jobs, or many runs, by id in one call."""

from __future__ import annotations

from typing import Any

from faena.domain.jobs import JobSpec
from tests.contract.support import submit
from tests.contract.workflow_support import TENANT, Harness

FLOW = "name: w\nsteps: [{id: a, kind: noop}]\n"
UNKNOWN = "0190c0de-0000-7000-8000-000000000000"


async def test_get_many_returns_the_tenants_jobs_among_the_ids(store: Any) -> None:
    """Missing ids and other tenants' jobs are left out; the rest equal ``get``."""
    mine = await submit(store, *(JobSpec(kind="noop", tenant="acme") for _ in range(3)))
    [theirs] = await submit(store, JobSpec(kind="noop", tenant="other"))

    found = await store.get_many("acme", [j.id for j in mine] + [theirs.id, UNKNOWN])

    assert sorted(found, key=lambda j: j.id) == sorted(mine, key=lambda j: j.id)
    assert await store.get_many("acme", []) == []


async def test_get_runs_returns_the_tenants_runs_among_the_ids(store: Any) -> None:
    h = Harness(store)
    await h.apply(FLOW)
    runs = [await h.start("w") for _ in range(2)]

    found = await store.get_runs(TENANT, [r.id for r in runs] + [UNKNOWN])

    assert sorted(r.id for r in found) == sorted(r.id for r in runs)
    assert {r.id: r.revision for r in found} == {r.id: r.revision for r in runs}
    assert await store.get_runs("other", [r.id for r in runs]) == []
    assert await store.get_runs(TENANT, []) == []
