"""Placement: which worker runs which job. A pipeline of filters, then a scorer. Pure.

Filters drop the workers that cannot run a job (tenant, kind, labels, room, health) and, when
none is left, say why in one sentence (the explanation ``GET /v1/jobs/{id}`` shows for a queued
job).
A scorer orders the survivors; several are available and a queue picks one:

- ``bin-packing``: the busiest worker that still has room first (frees whole machines);
- ``spread``: the emptiest, least loaded worker first;
- ``weighted``: performance 50 % (recent success rate and run time), free capacity 30 %,
  health 20 % (heartbeat CPU and RAM).

Label requirements are ``key=value`` or ``key in (a,b)`` (a job's label value ``in (a,b)``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from faena.domain.errors import ValidationError
from faena.domain.workers import Capacity, Load

_IN_SET = re.compile(r"^\s*in\s*\((.*)\)\s*$")
MAX_CPU = 4096.0
MAX_MEMORY_MB = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Resources:
    """What a job declares it needs (``{"cpu": 1, "memory_mb": 512}``), zero when unsaid."""

    cpu: float = 0.0
    memory_mb: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu + other.cpu, self.memory_mb + other.memory_mb)

    def to_json(self) -> dict[str, float | int]:
        return {"cpu": self.cpu, "memory_mb": self.memory_mb}


NO_RESOURCES = Resources()


def parse_resources(value: Any) -> Resources | None:
    """``{"cpu": 1.5, "memory_mb": 512}`` (both optional) → Resources; None stays None."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) - {"cpu", "memory_mb"}:
        raise ValidationError('resources must be an object with "cpu" and/or "memory_mb"')
    cpu = value.get("cpu", 0)
    memory = value.get("memory_mb", 0)
    if isinstance(cpu, bool) or not isinstance(cpu, int | float) or not 0 <= cpu <= MAX_CPU:
        raise ValidationError(f"resources.cpu must be a number between 0 and {MAX_CPU:.0f}")
    if isinstance(memory, bool) or not isinstance(memory, int) or not 0 <= memory <= MAX_MEMORY_MB:
        raise ValidationError(
            f"resources.memory_mb must be an integer between 0 and {MAX_MEMORY_MB}"
        )
    return Resources(float(cpu), memory)


def label_allows(required: str, offered: str | None) -> bool:
    """Does an offered label value satisfy a required one (``v`` or ``in (a,b)``)?"""
    if offered is None:
        return False
    match = _IN_SET.match(required)
    if match is None:
        return offered == required
    return offered in {v.strip() for v in match.group(1).split(",")}


def describe_label(key: str, required: str) -> str:
    match = _IN_SET.match(required)
    if match is None:
        return f"{key}={required}"
    values = ",".join(v.strip() for v in match.group(1).split(","))
    return f"{key} in ({values})"


@dataclass(frozen=True, slots=True)
class Demand:
    """What one job asks of a worker. ``tenant``: the job's; only workers serving it qualify."""

    kind: str
    labels: Mapping[str, str] = field(default_factory=dict)
    resources: Resources = NO_RESOURCES
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A worker as the scheduler sees it now. ``reserved`` sums the resources of its jobs;
    ``tenant`` is the only tenant it serves (None: every tenant, a shared worker)."""

    id: str
    kinds: frozenset[str]
    labels: Mapping[str, str]
    capacity: Capacity
    free_slots: int
    reserved: Resources = NO_RESOURCES
    load: Load = field(default_factory=Load)
    healthy: bool = True
    success_rate: float = 1.0  # of its recent attempts
    mean_run_s: float | None = None  # of its recent attempts
    tenant: str | None = None

    def fits(self, needs: Resources) -> bool:
        if self.capacity.cpu_cores and self.reserved.cpu + needs.cpu > self.capacity.cpu_cores:
            return False
        return not (
            self.capacity.memory_mb
            and self.reserved.memory_mb + needs.memory_mb > self.capacity.memory_mb
        )

    def took(self, needs: Resources) -> Candidate:
        return replace(self, free_slots=self.free_slots - 1, reserved=self.reserved + needs)


# -- filters ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filter:
    """Keeps the candidates ``keep`` accepts; ``why`` explains an empty result."""

    name: str
    keep: Callable[[Demand, Candidate], bool]
    why: Callable[[Demand, Sequence[Candidate]], str]


def _tenant(demand: Demand, c: Candidate) -> bool:
    return c.tenant is None or demand.tenant is None or c.tenant == demand.tenant


def _why_tenant(demand: Demand, before: Sequence[Candidate]) -> str:
    # Said to the job's own tenant: other tenants' workers are not described.
    return "no worker serving this tenant is connected"


def _serves(demand: Demand, c: Candidate) -> bool:
    return demand.kind in c.kinds


def _why_kind(demand: Demand, before: Sequence[Candidate]) -> str:
    return f"no connected worker serves kind {demand.kind!r}"


def _labels(demand: Demand, c: Candidate) -> bool:
    return all(label_allows(v, c.labels.get(k)) for k, v in demand.labels.items())


def _why_labels(demand: Demand, before: Sequence[Candidate]) -> str:
    for key, required in sorted(demand.labels.items()):
        if not any(label_allows(required, c.labels.get(key)) for c in before):
            return (
                f"no connected worker serving {demand.kind!r} has label "
                f"{describe_label(key, required)}"
            )
    wanted = ", ".join(describe_label(k, v) for k, v in sorted(demand.labels.items()))
    return f"no connected worker serving {demand.kind!r} has all the labels {wanted}"


def _room(demand: Demand, c: Candidate) -> bool:
    return c.free_slots > 0 and c.fits(demand.resources)


def _why_room(demand: Demand, before: Sequence[Candidate]) -> str:
    n = len(before)
    workers = "worker" if n == 1 else "workers"
    if all(c.free_slots <= 0 for c in before):
        return f"all {n} matching {workers} are busy (no free slot)"
    r = demand.resources
    if not any(
        (not c.capacity.cpu_cores or r.cpu <= c.capacity.cpu_cores)
        and (not c.capacity.memory_mb or r.memory_mb <= c.capacity.memory_mb)
        for c in before
    ):
        return f"no matching worker is big enough for cpu={r.cpu:g}, memory_mb={r.memory_mb}"
    return f"no matching worker has cpu={r.cpu:g}, memory_mb={r.memory_mb} free right now"


def _healthy(demand: Demand, c: Candidate) -> bool:
    return c.healthy


def _why_health(demand: Demand, before: Sequence[Candidate]) -> str:
    return "the matching workers are unhealthy (their heartbeats stopped)"


FILTERS: tuple[Filter, ...] = (
    Filter("tenant", _tenant, _why_tenant),
    Filter("kind", _serves, _why_kind),
    Filter("labels", _labels, _why_labels),
    Filter("healthy", _healthy, _why_health),
    Filter("room", _room, _why_room),
)


def eligible(
    demand: Demand, candidates: Sequence[Candidate], filters: Sequence[Filter] = FILTERS
) -> tuple[list[Candidate], str | None]:
    """The candidates passing every filter, or none and the reason."""
    if not candidates:
        return [], "no worker is connected"
    left = list(candidates)
    for f in filters:
        kept = [c for c in left if f.keep(demand, c)]
        if not kept:
            return [], f.why(demand, left)
        left = kept
    return left, None


# -- scorers ---------------------------------------------------------------------------------

Scorer = Callable[[Candidate, Sequence[Candidate]], float]


def _free_fraction(c: Candidate) -> float:
    return max(0.0, min(1.0, c.free_slots / c.capacity.slots)) if c.capacity.slots else 0.0


def health(c: Candidate) -> float:
    """1 for an idle machine, 0 for one with its CPU or RAM saturated."""
    worst = max(c.load.cpu_percent, c.load.memory_percent)
    return max(0.0, min(1.0, 1.0 - worst / 100.0))


def performance(c: Candidate, pool: Sequence[Candidate]) -> float:
    """Recent success rate, times how fast it runs compared with the fastest in ``pool``."""
    rate = max(0.0, min(1.0, c.success_rate))
    if c.mean_run_s is None or c.mean_run_s <= 0:
        return rate
    fastest = min((p.mean_run_s for p in pool if p.mean_run_s), default=c.mean_run_s)
    return rate * min(1.0, fastest / c.mean_run_s)


def bin_packing(c: Candidate, pool: Sequence[Candidate]) -> float:
    return 1.0 - _free_fraction(c)


def spread(c: Candidate, pool: Sequence[Candidate]) -> float:
    return 0.5 * _free_fraction(c) + 0.5 * health(c)


def weighted(c: Candidate, pool: Sequence[Candidate]) -> float:
    return 0.5 * performance(c, pool) + 0.3 * _free_fraction(c) + 0.2 * health(c)


SCORERS: dict[str, Scorer] = {"bin-packing": bin_packing, "spread": spread, "weighted": weighted}
DEFAULT_SCORER = "weighted"


def scorer_named(name: str) -> Scorer:
    try:
        return SCORERS[name]
    except KeyError:
        known = ", ".join(sorted(SCORERS))
        raise ValidationError(f"unknown placement scorer {name!r}; use one of {known}") from None


# -- placing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Placement:
    worker_id: str | None
    reason: str | None = None  # why not placed


def place(demand: Demand, candidates: Sequence[Candidate], scorer: Scorer) -> Placement:
    """The best worker for one job, or None and why."""
    left, reason = eligible(demand, candidates)
    if not left:
        return Placement(None, reason)
    best = max(left, key=lambda c: (scorer(c, left), c.id))
    return Placement(best.id)


@dataclass(slots=True)
class Plan:
    assignments: dict[str, list[str]] = field(default_factory=dict)  # worker id → job ids
    unplaced: dict[str, str] = field(default_factory=dict)  # job id → reason


def plan(jobs: Sequence[tuple[str, Demand, Scorer]], candidates: Sequence[Candidate]) -> Plan:
    """Place ``jobs`` in order (highest priority first); each placement uses up room on its
    worker, so one round of placement spreads or packs as its scorer wants."""
    pool = {c.id: c for c in candidates}
    out = Plan()
    for job_id, demand, scorer in jobs:
        decided = place(demand, list(pool.values()), scorer)
        if decided.worker_id is None:
            out.unplaced[job_id] = decided.reason or "not placed"
            continue
        pool[decided.worker_id] = pool[decided.worker_id].took(demand.resources)
        out.assignments.setdefault(decided.worker_id, []).append(job_id)
    return out
