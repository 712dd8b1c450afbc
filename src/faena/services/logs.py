"""The log pipeline: chunks from running jobs are numbered, batched into the store, and
announced on the bus once stored (a follower then reads them from the store, in order)."""

from __future__ import annotations

from collections.abc import Sequence

from faena.domain.events import Event
from faena.domain.jobs import Job
from faena.domain.logs import LogChunk, LogStream
from faena.ports.bus import EventBus
from faena.ports.clock import Clock
from faena.ports.store import JobStore
from faena.services.batching import GroupCommitter
from faena.services.progress import ProgressBoard

MAX_CHUNK_CHARS = 64 * 1024


class LogWriter:
    def __init__(self, store: JobStore, bus: EventBus, clock: Clock) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._committer: GroupCommitter[LogChunk] = GroupCommitter(self._flush, name="logs")
        self.progress = ProgressBoard(bus, clock)  # what running tasks report besides output

    async def _flush(self, chunks: Sequence[LogChunk]) -> None:
        await self._store.append_logs(chunks)
        seen: dict[str, LogChunk] = {}
        for chunk in chunks:
            seen[chunk.job_id] = chunk
        now = self._clock.now()
        self._bus.publish(
            [
                Event(type="job.log", tenant=c.tenant, job_id=c.job_id, data={"seq": c.seq}, ts=now)
                for c in seen.values()
            ]
        )

    def sink(self, job: Job) -> JobLogSink:
        return JobLogSink(self, job)

    def add(self, chunk: LogChunk) -> None:
        self._committer.add(chunk)

    async def drain(self) -> None:
        await self._committer.drain()

    async def close(self) -> None:
        await self._committer.close()

    @property
    def backlog(self) -> int:
        return self._committer.backlog

    @property
    def clock(self) -> Clock:
        return self._clock


class JobLogSink:
    """What the executor writes a job's output to; numbers chunks per attempt."""

    __slots__ = ("_job", "_seq", "_writer", "wrote")

    def __init__(self, writer: LogWriter, job: Job) -> None:
        self._writer = writer
        self._job = job
        self._seq = 0
        self.wrote = False

    def log(self, stream: LogStream, data: str) -> None:
        if not data:
            return
        now = self._writer.clock.now()
        for start in range(0, len(data), MAX_CHUNK_CHARS):
            self._writer.add(
                LogChunk(
                    job_id=self._job.id,
                    seq=self._seq,
                    stream=LogStream(stream),
                    data=data[start : start + MAX_CHUNK_CHARS],
                    ts=now,
                    tenant=self._job.tenant,
                    attempt=self._job.attempts,
                )
            )
            self._seq += 1
        self.wrote = True

    def progress(self, fraction: float, message: str = "") -> None:
        self._writer.progress.report(self._job, self._job.attempts, fraction, message)
