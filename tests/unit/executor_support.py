"""Helpers for the worker runtime's tests: a job factory and a sink that records chunks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from faena.domain.jobs import Job, JobState
from faena.domain.logs import LogStream


def make_job(
    kind: str,
    payload: Any = None,
    *,
    timeout_s: float | None = None,
    job_id: str = "job-1",
    attempts: int = 1,
    tenant: str = "acme",
) -> Job:
    return Job(
        id=job_id,
        tenant=tenant,
        kind=kind,
        queue="default",
        state=JobState.RUNNING,
        payload=payload,
        priority=0,
        labels={},
        max_attempts=3,
        attempts=attempts,
        created_at=0.0,
        timeout_s=timeout_s,
    )


class RecordingSink:
    """Keeps every chunk in arrival order; tests await a condition on them."""

    def __init__(self) -> None:
        self.chunks: list[tuple[LogStream, str]] = []
        self._waiters: list[tuple[Callable[[RecordingSink], bool], asyncio.Future[None]]] = []

    def log(self, stream: LogStream, data: str) -> None:
        self.chunks.append((stream, data))
        for condition, waiter in list(self._waiters):
            if not waiter.done() and condition(self):
                waiter.set_result(None)

    def text(self, stream: LogStream) -> str:
        return "".join(data for s, data in self.chunks if s is stream)

    @property
    def stdout(self) -> str:
        return self.text(LogStream.STDOUT)

    @property
    def stderr(self) -> str:
        return self.text(LogStream.STDERR)

    async def wait_for(self, condition: Callable[[RecordingSink], bool]) -> None:
        if condition(self):
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((condition, waiter))
        try:
            await waiter
        finally:
            self._waiters.remove((condition, waiter))


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie left for a non-reaping PID 1 counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return True
    return stat[stat.rfind(")") + 2] in "ZX"
