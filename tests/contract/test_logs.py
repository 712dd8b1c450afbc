"""Log chunks: appended in order, read back from a cursor."""

from __future__ import annotations

from faena.domain.logs import LogChunk, LogStream
from faena.ports.store import JobStore, ReadLogsParams
from tests.contract.support import NOW


def chunk(job_id: str, seq: int, data: str = "", tenant: str = "default") -> LogChunk:
    return LogChunk(
        job_id=job_id, seq=seq, stream=LogStream.STDOUT, data=data, ts=NOW + seq, tenant=tenant
    )


async def test_logs_read_back_in_order(store: JobStore) -> None:
    """Chunks come back as appended, with every field intact."""
    chunks = [chunk("j1", i, f"line {i}\n") for i in range(3)]
    await store.append_logs(chunks[:2])
    await store.append_logs(chunks[2:])
    stored = await store.read_logs(ReadLogsParams(tenant="default", job_id="j1"))
    assert [s.chunk for s in stored] == chunks


async def test_log_cursors_increase(store: JobStore) -> None:
    """Each chunk gets a strictly larger cursor than the one before."""
    await store.append_logs([chunk("j1", i) for i in range(4)])
    stored = await store.read_logs(ReadLogsParams(tenant="default", job_id="j1"))
    cursors = [s.cursor for s in stored]
    assert cursors == sorted(set(cursors)) and cursors[0] > 0


async def test_reading_after_a_cursor_resumes_there(store: JobStore) -> None:
    """`after` skips every chunk up to and including that cursor."""
    await store.append_logs([chunk("j1", i) for i in range(5)])
    first = await store.read_logs(ReadLogsParams(tenant="default", job_id="j1", limit=2))
    rest = await store.read_logs(
        ReadLogsParams(tenant="default", job_id="j1", after=first[-1].cursor)
    )
    assert [s.chunk.seq for s in first] == [0, 1]
    assert [s.chunk.seq for s in rest] == [2, 3, 4]


async def test_logs_are_kept_per_job(store: JobStore) -> None:
    """Chunks of other jobs are not mixed in."""
    await store.append_logs([chunk("j1", 0, "a"), chunk("j2", 0, "b"), chunk("j1", 1, "c")])
    stored = await store.read_logs(ReadLogsParams(tenant="default", job_id="j1"))
    assert [s.chunk.data for s in stored] == ["a", "c"]


async def test_logs_are_scoped_by_tenant(store: JobStore) -> None:
    """Another tenant reads no chunks of the job."""
    await store.append_logs([chunk("j1", 0, tenant="a")])
    assert await store.read_logs(ReadLogsParams(tenant="b", job_id="j1")) == []


async def test_reading_logs_of_a_silent_job_returns_nothing(store: JobStore) -> None:
    """No chunks yet: an empty list."""
    assert await store.read_logs(ReadLogsParams(tenant="default", job_id="j1")) == []
