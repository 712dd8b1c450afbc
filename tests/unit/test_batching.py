"""Group commit: items written together while a flush is in flight, none lost on errors."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from faena.services.batching import GroupCommitter


async def test_an_idle_committer_writes_an_item_at_once() -> None:
    written: list[list[int]] = []

    async def flush(items: Sequence[int]) -> None:
        written.append(list(items))

    c: GroupCommitter[int] = GroupCommitter(flush)
    c.add(1)
    await c.drain()
    assert written == [[1]]


async def test_items_arriving_during_a_flush_go_out_together() -> None:
    written: list[list[int]] = []
    gate = asyncio.Event()

    async def flush(items: Sequence[int]) -> None:
        written.append(list(items))
        await gate.wait()

    c: GroupCommitter[int] = GroupCommitter(flush)
    c.add(0)
    await asyncio.sleep(0)  # the first flush is now in flight
    for i in range(1, 100):
        c.add(i)
    gate.set()
    await c.drain()
    assert written == [[0], list(range(1, 100))]


async def test_batches_are_bounded() -> None:
    sizes: list[int] = []

    async def flush(items: Sequence[int]) -> None:
        sizes.append(len(items))

    c: GroupCommitter[int] = GroupCommitter(flush, max_batch=10)
    c.add_many(list(range(25)))
    await c.drain()
    assert sizes == [10, 10, 5]


async def test_a_failed_flush_is_retried_and_nothing_is_lost() -> None:
    written: list[int] = []
    failures = 2

    async def flush(items: Sequence[int]) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise OSError("disk hiccup")
        written.extend(items)

    c: GroupCommitter[int] = GroupCommitter(flush, retry_delay_s=0.0)
    c.add_many([1, 2, 3])
    await c.drain()
    assert written == [1, 2, 3]


async def test_close_gives_up_on_a_store_that_never_answers() -> None:
    """A shutdown while the store is away ends after the close timeout instead of hanging;
    a drain waiting meanwhile is told, not left pending."""
    tries = 0

    async def flush(items: Sequence[int]) -> None:
        nonlocal tries
        tries += 1
        raise ConnectionError("the database is away")

    c: GroupCommitter[int] = GroupCommitter(flush, retry_delay_s=0.01, max_retry_delay_s=0.02)
    c.add(1)
    waiting = asyncio.create_task(c.drain())
    async with asyncio.timeout(5):
        await c.close(timeout_s=0.2)
    assert tries > 1 and c.backlog == 1  # retried, then left for the next start
    try:
        await waiting
    except ConnectionError as e:
        assert "did not answer" in str(e)
    else:
        raise AssertionError("the waiting drain was not told")
    before = tries
    c.add(2)  # closed: no flush runs any more
    await asyncio.sleep(0.05)
    assert tries == before
