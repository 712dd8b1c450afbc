"""Workers: the processes that run jobs (local pools and remote agents), as the registry knows
them, and the tokens remote agents connect with. Pure data, no I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any

WORKER_TOKEN_PREFIX = "fw_"
VISIBLE_TOKEN_PREFIX_LENGTH = 11  # "fw_" plus 8 characters


class WorkerKind(enum.StrEnum):
    LOCAL = "local"  # the pool inside `faena up` / `faena server --workers N`
    REMOTE = "remote"  # a `faena worker` agent connected over the worker protocol


class WorkerState(enum.StrEnum):
    CONNECTED = "connected"
    DRAINING = "draining"  # takes no new jobs, finishes the ones it runs
    DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class Capacity:
    """What a worker offers: job slots, CPU cores and memory (MB) for jobs' ``resources``."""

    slots: int
    cpu_cores: float = 0.0
    memory_mb: int = 0


@dataclass(frozen=True, slots=True)
class Load:
    """Live usage reported by the worker's heartbeat (psutil): percentages of the machine."""

    cpu_percent: float = 0.0
    memory_percent: float = 0.0
    running: int = 0


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker as recorded in the store. ``server`` is the server it is connected to (for a
    local pool, the server it runs in); ``last_heartbeat`` says whether it is alive."""

    id: str
    kind: WorkerKind
    kinds: frozenset[str]
    labels: dict[str, str]
    capacity: Capacity
    version: str
    host: str
    server: str
    started_at: float
    last_heartbeat: float
    load: Load = field(default_factory=Load)
    state: WorkerState = WorkerState.CONNECTED

    def is_live(self, now: float, ttl_s: float) -> bool:
        return self.state is not WorkerState.DISCONNECTED and self.last_heartbeat >= now - ttl_s

    def evolve(self, **changes: Any) -> WorkerInfo:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class WorkerToken:
    """A token a remote worker connects with. Stored as a SHA-256 hash, like API keys."""

    id: str
    tenant: str
    name: str
    prefix: str
    token_hash: str
    created_at: float
    revoked_at: float | None = None

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
