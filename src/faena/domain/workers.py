"""Workers: the processes that run jobs (local pools and remote agents), as the registry knows
them, and the tokens remote agents connect with. Pure data, no I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any

from faena.domain.jobs import DEFAULT_TENANT as OPERATOR_TENANT  # shared workers are its

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
    local pool, the server it runs in); ``last_heartbeat`` says whether it is alive. ``tenant``
    is the only tenant whose jobs it runs (its worker token's); None for a worker that serves
    every tenant: a local pool, or a remote worker on a shared token."""

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
    tenant: str | None = None

    @property
    def shared(self) -> bool:
        return self.tenant is None

    def serves(self, tenant: str) -> bool:
        """Does this worker run ``tenant``'s jobs?"""
        return self.tenant is None or self.tenant == tenant

    def is_live(self, now: float, ttl_s: float) -> bool:
        return self.state is not WorkerState.DISCONNECTED and self.last_heartbeat >= now - ttl_s

    def evolve(self, **changes: Any) -> WorkerInfo:
        return replace(self, **changes)


def visible_to(worker: WorkerInfo, tenant: str) -> bool:
    """May ``tenant`` see this worker (``GET /v1/workers``)? Its own bound workers; the shared
    ones (local pools, shared tokens) are the operator's, shown to the ``default`` tenant."""
    if worker.tenant is None:
        return tenant == OPERATOR_TENANT
    return worker.tenant == tenant


@dataclass(frozen=True, slots=True)
class WorkerToken:
    """A token a remote worker connects with. Stored as a SHA-256 hash, like API keys.

    Its workers run ``tenant``'s jobs only; a ``shared`` token (created by the operator, whose
    tenant it belongs to) serves every tenant."""

    id: str
    tenant: str
    name: str
    prefix: str
    token_hash: str
    created_at: float
    revoked_at: float | None = None
    shared: bool = False

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def serves_tenant(self) -> str | None:
        """The tenant its workers are bound to; None: every tenant (shared)."""
        return None if self.shared else self.tenant
