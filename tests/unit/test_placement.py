"""Placement: filters explain why a job cannot be placed; scorers order the workers left."""

from __future__ import annotations

import pytest

from faena.domain.errors import ValidationError
from faena.domain.placement import (
    NO_RESOURCES,
    Candidate,
    Demand,
    Resources,
    bin_packing,
    eligible,
    label_allows,
    parse_resources,
    place,
    plan,
    scorer_named,
    spread,
    weighted,
)
from faena.domain.workers import Capacity, Load


def worker(
    worker_id: str,
    *,
    kinds: frozenset[str] = frozenset({"noop"}),
    labels: dict[str, str] | None = None,
    slots: int = 4,
    free: int | None = None,
    cpu: float = 0.0,
    cores: float = 0.0,
    memory_mb: int = 0,
    reserved: Resources = NO_RESOURCES,
    healthy: bool = True,
    success_rate: float = 1.0,
    mean_run_s: float | None = None,
) -> Candidate:
    return Candidate(
        id=worker_id,
        kinds=kinds,
        labels=labels or {},
        capacity=Capacity(slots=slots, cpu_cores=cores, memory_mb=memory_mb),
        free_slots=slots if free is None else free,
        reserved=reserved,
        load=Load(cpu_percent=cpu),
        healthy=healthy,
        success_rate=success_rate,
        mean_run_s=mean_run_s,
    )


def test_label_requirements_are_equality_or_a_set() -> None:
    assert label_allows("eu", "eu")
    assert not label_allows("eu", "us")
    assert label_allows("in (eu, us)", "us")
    assert not label_allows("in (eu,us)", "ap")
    assert not label_allows("eu", None)


def test_no_worker_at_all_is_explained() -> None:
    assert eligible(Demand("noop"), []) == ([], "no worker is connected")


def test_a_kind_nobody_serves_is_explained() -> None:
    _, why = eligible(Demand("ocr"), [worker("a")])
    assert why == "no connected worker serves kind 'ocr'"


def test_a_missing_label_is_named() -> None:
    _, why = eligible(Demand("noop", {"gpu": "true"}), [worker("a", labels={"gpu": "false"})])
    assert why == "no connected worker serving 'noop' has label gpu=true"


def test_a_set_label_is_named_as_a_set() -> None:
    _, why = eligible(Demand("noop", {"region": "in (eu,us)"}), [worker("a")])
    assert why == "no connected worker serving 'noop' has label region in (eu,us)"


def test_full_workers_are_explained() -> None:
    _, why = eligible(Demand("noop"), [worker("a", free=0), worker("b", free=0)])
    assert why == "all 2 matching workers are busy (no free slot)"


def test_resources_must_fit_the_free_capacity() -> None:
    small = worker("a", cores=2, memory_mb=1024)
    busy = worker("b", cores=8, memory_mb=8192, reserved=Resources(cpu=7, memory_mb=0))
    need = Demand("noop", resources=Resources(cpu=4, memory_mb=512))
    left, why = eligible(need, [small, busy])
    assert left == []
    assert why == "no matching worker has cpu=4, memory_mb=512 free right now"
    _, why = eligible(Demand("noop", resources=Resources(cpu=16)), [small])
    assert why == "no matching worker is big enough for cpu=16, memory_mb=0"


def test_unhealthy_workers_are_skipped() -> None:
    _, why = eligible(Demand("noop"), [worker("a", healthy=False)])
    assert why is not None and "unhealthy" in why


def test_bin_packing_prefers_the_busiest_worker_with_room() -> None:
    chosen = place(Demand("noop"), [worker("a", free=4), worker("b", free=1)], bin_packing)
    assert chosen.worker_id == "b"


def test_spread_prefers_the_emptiest_least_loaded_worker() -> None:
    chosen = place(Demand("noop"), [worker("a", free=1), worker("b", free=4)], spread)
    assert chosen.worker_id == "b"
    chosen = place(Demand("noop"), [worker("a", cpu=90), worker("b", cpu=10)], spread)
    assert chosen.worker_id == "b"


def test_weighted_score_favours_performance_then_capacity_then_health() -> None:
    failing = worker("a", success_rate=0.2)
    good = worker("b", success_rate=1.0, free=2)
    assert place(Demand("noop"), [failing, good], weighted).worker_id == "b"
    slow = worker("a", mean_run_s=10.0)
    fast = worker("b", mean_run_s=1.0)
    assert place(Demand("noop"), [slow, fast], weighted).worker_id == "b"
    loaded = worker("a", cpu=95)
    idle = worker("b", cpu=5)
    assert place(Demand("noop"), [loaded, idle], weighted).worker_id == "b"


def test_a_plan_uses_up_room_as_it_places() -> None:
    jobs = [(f"j{i}", Demand("noop"), spread) for i in range(5)]
    decided = plan(jobs, [worker("a", slots=2), worker("b", slots=2)])
    assert sorted(len(ids) for ids in decided.assignments.values()) == [2, 2]
    assert decided.unplaced == {"j4": "all 2 matching workers are busy (no free slot)"}


def test_a_loaded_worker_receives_less_under_the_weighted_score() -> None:
    jobs = [(f"j{i}", Demand("noop"), weighted) for i in range(4)]
    decided = plan(jobs, [worker("hot", cpu=95), worker("cool", cpu=5)])
    assert len(decided.assignments["cool"]) > len(decided.assignments.get("hot", []))


def test_resources_parse_and_refuse_nonsense() -> None:
    assert parse_resources({"cpu": 1, "memory_mb": 512}) == Resources(1.0, 512)
    assert parse_resources(None) is None
    with pytest.raises(ValidationError):
        parse_resources({"cpu": -1})
    with pytest.raises(ValidationError):
        parse_resources({"gpus": 1})


def test_an_unknown_scorer_lists_the_known_ones() -> None:
    with pytest.raises(ValidationError, match="bin-packing, spread, weighted"):
        scorer_named("random")
