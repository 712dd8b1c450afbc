"""A workflow engine on the contract ``store``, driven by hand: jobs are claimed and completed
through the store, and runs advanced explicitly, so every test is deterministic."""

from __future__ import annotations

from typing import Any

from faena.adapters.local_bus import LocalBus
from faena.domain.jobs import Job, JobState
from faena.domain.runs import Run
from faena.domain.workflows import load_yaml
from faena.ports.store import ClaimParams, CompleteParams, Completion
from faena.services.catalog import KindCatalog
from faena.services.orchestrator import Orchestrator
from faena.services.workflow_engine import Store, WorkflowEngine
from faena.services.workflows import WorkflowService

KINDS = frozenset({"noop", "extract", "notify", "fetch", "add"})
TENANT = "default"


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.t = now

    def now(self) -> float:
        return self.t


class Harness:
    def __init__(self, store: Any) -> None:
        self.store: Store = store
        self.bus = LocalBus()
        self.clock = FakeClock()
        catalog = KindCatalog()
        catalog.add_source(lambda: KINDS)
        self.orchestrator = Orchestrator(store, self.bus, self.clock, catalog)
        self.engine = WorkflowEngine(store, self.orchestrator, self.bus, self.clock)
        self.service = WorkflowService(self.engine)

    async def apply(self, text: str) -> int:
        result = await self.service.apply(TENANT, self.service.parse(load_yaml(text)))
        return result.version.version

    async def start(self, name: str, inputs: dict[str, Any] | None = None) -> Run:
        run, _ = await self.service.start(TENANT, name, inputs)
        return run

    async def claim(self, limit: int = 100) -> list[Job]:
        return await self.store.claim(
            ClaimParams(worker_id="w", limit=limit, lease_s=30, now=self.clock.now())
        )

    async def complete(
        self,
        job: Job,
        result: Any = None,
        state: JobState = JobState.SUCCEEDED,
        error: str | None = None,
    ) -> None:
        await self.store.complete_many(
            CompleteParams(
                [Completion(job.id, job.attempts, state, result=result, error=error)],
                self.clock.now(),
            )
        )

    async def work(
        self, results: dict[str, Any] | None = None, fail: set[str] = frozenset()
    ) -> list[Job]:
        """Claim every runnable job and finish it: ``results[kind]`` (a value, or a function
        of the payload) or the payload itself; kinds in ``fail`` fail."""
        jobs = await self.claim()
        for job in jobs:
            if job.kind in fail:
                await self.complete(job, state=JobState.FAILED, error=f"{job.kind} broke")
                continue
            result = (results or {}).get(job.kind, job.payload)
            await self.complete(job, result(job.payload) if callable(result) else result)
        return jobs

    async def advance(self, run: Run) -> Run:
        saved = await self.engine.advance(TENANT, run.id)
        assert saved is not None
        return saved

    async def drive(
        self,
        run: Run,
        results: dict[str, Any] | None = None,
        fail: set[str] = frozenset(),
        rounds: int = 20,
    ) -> Run:
        """Work and advance until the run is terminal."""
        for _ in range(rounds):
            run = await self.advance(run)
            if run.state.is_terminal:
                return run
            await self.work(results, fail)
        raise AssertionError(f"run still {run.state} after {rounds} rounds")

    def states(self, run: Run) -> dict[str, str]:
        return {s.id: s.state.value for s in run.steps}
