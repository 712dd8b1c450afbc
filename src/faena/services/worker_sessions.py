"""What the worker manager keeps per connected worker, and what workers tell it."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from faena.domain.jobs import Job
from faena.domain.placement import DEFAULT_SCORER, NO_RESOURCES, Candidate, Resources
from faena.domain.workers import Capacity, WorkerInfo
from faena.ports.workers import WorkerChannel

RECENT = 50  # attempts remembered per worker for its performance score


@dataclass(frozen=True, slots=True)
class Registration:
    worker_id: str
    kinds: frozenset[str]
    labels: dict[str, str]
    capacity: Capacity
    version: str
    host: str
    running: tuple[tuple[str, int, str], ...] = ()  # (job id, attempt, tenant) after a reconnect


@dataclass(frozen=True, slots=True)
class ResultIn:
    job_id: str
    attempt: int
    tenant: str
    succeeded: bool
    result: Any = None
    error: str | None = None
    retryable: bool = True
    handed_back: bool = False
    run_s: float | None = None


@dataclass(slots=True)
class Session:
    info: WorkerInfo
    channel: WorkerChannel
    token_id: str
    held: dict[str, Job] = field(default_factory=dict)
    draining: bool = False
    last_heartbeat: float = 0.0
    last_saved: float = 0.0
    outcomes: deque[tuple[bool, float | None]] = field(default_factory=lambda: deque(maxlen=RECENT))

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def free_slots(self) -> int:
        return self.info.capacity.slots - len(self.held)

    def candidate(self, healthy: bool) -> Candidate:
        ok = [run_s for good, run_s in self.outcomes if good and run_s is not None]
        rate = (
            sum(1 for good, _ in self.outcomes if good) / len(self.outcomes)
            if self.outcomes
            else 1.0
        )
        reserved = NO_RESOURCES
        for job in self.held.values():
            reserved = reserved + job_resources(job)
        return Candidate(
            id=self.id,
            kinds=self.info.kinds,
            labels=self.info.labels,
            capacity=self.info.capacity,
            free_slots=0 if self.draining else self.free_slots,
            reserved=reserved,
            load=self.info.load,
            healthy=healthy,
            success_rate=rate,
            mean_run_s=sum(ok) / len(ok) if ok else None,
            tenant=self.info.tenant,
        )


def job_resources(job: Job) -> Resources:
    """What a job declared it needs (``resources``)."""
    if not job.resources:
        return NO_RESOURCES
    return Resources(
        cpu=float(job.resources.get("cpu", 0)), memory_mb=int(job.resources.get("memory_mb", 0))
    )


@dataclass(slots=True)
class ManagerConfig:
    server_id: str
    lease_s: float = 30.0
    heartbeat_s: float = 2.0  # asked of workers
    poll_s: float = 1.0  # placement fallback when nothing wakes it
    scorer: str = DEFAULT_SCORER
    queue_scorers: Mapping[str, str] = field(default_factory=dict)
    token_check_s: float = 2.0
