"""A job's parent (the agent job whose tool call it is): stored with the job, carried through
claim and completion, and a filter of the job list."""

from __future__ import annotations

from faena.domain.jobs import JobSpec, JobState
from faena.ports.store import JobStore, ListParams
from tests.contract.support import claim, complete, submit, submit_one


async def test_a_job_keeps_its_parent_through_its_life(store: JobStore) -> None:
    """parent_id is read back by get and list, and by the jobs claim and complete return."""
    parent = await submit_one(store)
    child = await submit_one(store, kind="double", parent_id=parent.id)
    assert child.parent_id == parent.id and parent.parent_id is None
    assert (await store.get("default", child.id)).parent_id == parent.id  # type: ignore[union-attr]
    claimed = {j.id: j for j in await claim(store)}
    assert claimed[child.id].parent_id == parent.id and claimed[parent.id].parent_id is None
    (done,) = await complete(store, claimed[child.id], JobState.SUCCEEDED, result=4)
    assert done.parent_id == parent.id


async def test_list_filters_by_parent_newest_first_with_cursors(store: JobStore) -> None:
    """`parent_id` lists a job's children only, newest first, page by page."""
    parent, other = await submit(store, JobSpec(kind="agent"), JobSpec(kind="agent"))
    children = await submit(store, *(JobSpec(kind="double", parent_id=parent.id) for _ in range(3)))
    await submit_one(store, kind="double", parent_id=other.id)
    await submit_one(store, kind="double")
    first = await store.list_jobs(ListParams(tenant="default", parent_id=parent.id, limit=2))
    assert [j.id for j in first.jobs] == [children[2].id, children[1].id]
    assert first.next_cursor is not None
    rest = await store.list_jobs(
        ListParams(tenant="default", parent_id=parent.id, cursor=first.next_cursor)
    )
    assert [j.id for j in rest.jobs] == [children[0].id] and rest.next_cursor is None
    both = await store.list_jobs(ListParams(tenant="default", parent_id=parent.id, kind="noop"))
    assert both.jobs == []


async def test_listing_children_is_scoped_by_tenant(store: JobStore) -> None:
    """Another tenant never sees the children, even knowing the parent's id."""
    parent = await submit_one(store, tenant="acme")
    await submit_one(store, tenant="acme", parent_id=parent.id)
    page = await store.list_jobs(ListParams(tenant="globex", parent_id=parent.id))
    assert page.jobs == []
    mine = await store.list_jobs(ListParams(tenant="acme", parent_id=parent.id))
    assert len(mine.jobs) == 1


async def test_a_resubmitted_child_is_the_earlier_one(store: JobStore) -> None:
    """An idempotent submit of a child returns the first job, parent and all."""
    parent = await submit_one(store)
    spec = JobSpec(kind="double", idempotency_key="agent:x:0:0", parent_id=parent.id)
    (first,) = await submit(store, spec)
    (again,) = await submit(store, spec)
    assert again.id == first.id and again.parent_id == parent.id
