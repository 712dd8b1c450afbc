"""``FAENA_GC_THRESHOLD``: long-running processes freeze their startup heap out of the cyclic
collector and collect the young generation less often (``faena.bootstrap.tune_gc``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from faena.bootstrap import tune_gc
from faena.config import Settings
from faena.domain.errors import ValidationError


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_the_heap_alive_at_start_is_frozen_and_young_collections_wait(restored_gc: None) -> None:
    alive_at_start = [[i] for i in range(1000)]  # lists: tracked by the collector
    frozen_before = gc.get_freeze_count()
    tune_gc(Settings.from_env(gc_threshold=50_000).gc_threshold)
    assert gc.get_threshold() == (50_000, 20, 100)
    assert gc.get_freeze_count() >= frozen_before + len(alive_at_start)


def test_zero_keeps_pythons_defaults(restored_gc: None) -> None:
    before = gc.get_threshold()
    tune_gc(Settings.from_env(gc_threshold=0).gc_threshold)
    assert gc.get_threshold() == before


def test_the_default_and_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().gc_threshold == 100_000
    monkeypatch.setenv("FAENA_GC_THRESHOLD", "-1")
    with pytest.raises(ValidationError, match="gc_threshold must be between 0"):
        Settings.from_env()
