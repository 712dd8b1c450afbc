"""faena for your own tests: the real services, executor and local pool on the in-memory store.

::

    import faena
    from faena.testing import InMemoryFaena

    @faena.task
    async def add(a: int, b: int) -> int:
        return a + b

    async def test_add() -> None:
        async with InMemoryFaena() as f:
            job = await f.submit("add", {"a": 1, "b": 2})
            assert (await f.wait(job.id)).result == 3

``f.app`` is the HTTP API as an ASGI app and ``f.api_key`` its admin key, for
``httpx.AsyncClient(transport=httpx.ASGITransport(f.app))`` or ``faena.AsyncClient``.
"""

from __future__ import annotations

import asyncio
from contextlib import closing
from typing import Any

from faena.adapters.memory.store import MemoryStore
from faena.bootstrap import Runtime, build_runtime
from faena.config import Settings
from faena.domain.jobs import DEFAULT_TENANT, Job, JobState
from faena.services.orchestrator import JobRequest
from faena.worker.registry import TaskRegistry

__all__ = ["InMemoryFaena", "MemoryStore"]

TEST_ADMIN_KEY = "fk_test_admin_key_for_faena_testing_only"


class InMemoryFaena:
    def __init__(
        self,
        *,
        workers: int = 10,
        allow_shell: bool = True,
        registry: TaskRegistry | None = None,
        lease_s: float = 30.0,
    ) -> None:
        settings = Settings(
            database_url="memory://",
            workers=workers,
            allow_shell=allow_shell,
            bootstrap_key=TEST_ADMIN_KEY,
            lease_s=lease_s,
            shutdown_grace_s=5.0,
            rate_limits=False,  # a test engine answers every call its test makes
        )
        self.runtime: Runtime = build_runtime(settings, registry=registry)
        self.api_key = TEST_ADMIN_KEY
        self.tenant = DEFAULT_TENANT
        self._app: Any = None

    async def __aenter__(self) -> InMemoryFaena:
        await self.runtime.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runtime.stop()

    @property
    def app(self) -> Any:
        if self._app is None:
            self._app = self.runtime.app()
        return self._app

    async def submit(self, kind: str, payload: Any = None, **options: Any) -> Job:
        request = JobRequest(kind=kind, payload=payload, **options)
        [submitted] = await self.runtime.orchestrator.submit(self.tenant, [request])
        return submitted.job

    async def get(self, job_id: str) -> Job:
        return await self.runtime.orchestrator.get(self.tenant, job_id)

    async def wait(self, job_id: str, timeout: float = 10.0) -> Job:
        """The job once terminal; raises TimeoutError if it is not within ``timeout``."""
        job = await self.runtime.orchestrator.wait(self.tenant, job_id, timeout)
        if not job.is_terminal:
            raise TimeoutError(f"job {job_id} is still {job.state.value} after {timeout}s")
        return job

    async def logs(self, job_id: str) -> str:
        chunks = await self.runtime.orchestrator.read_logs(self.tenant, job_id)
        return "".join(c.chunk.data for c in chunks)

    async def run_until_idle(self, timeout: float = 10.0) -> None:
        """Burst mode: return once nothing is queued or running (scheduled jobs may remain)."""
        with closing(self.runtime.bus.subscribe()) as sub:
            async with asyncio.timeout(timeout):
                while True:
                    stats = await self.runtime.orchestrator.stats(self.tenant)
                    busy = stats.by_state.get(JobState.QUEUED.value, 0) + stats.by_state.get(
                        JobState.RUNNING.value, 0
                    )
                    if busy == 0 and self.runtime.completer.backlog == 0:
                        if self.runtime.pool is not None:
                            await self.runtime.pool.wait_idle()
                        return
                    await sub.get()
