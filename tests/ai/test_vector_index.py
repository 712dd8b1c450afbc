"""The in-process vector index is exact: pruning with the head's Cauchy-Schwarz bound never
misses the best row at or above the threshold and never answers below it, before and after
its axes are fitted, with expired, dropped and replaced rows."""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np
import pytest

from faena.ports.ai_cache import CacheEntry
from faena.services.vector_index import FIT_AT, VectorIndex

DIM = 384
NOW = 100.0


def unit(rows: Any) -> Any:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def entry(i: int, vector: Any, expires_at: float | None = None, key: str = "") -> CacheEntry:
    return CacheEntry(
        i + 1, "t", "ns", key or f"k{i}", "", array("f", vector.tobytes()), {}, 0.0, expires_at, "m"
    )


def brute(matrix: Any, live: Any, query: Any, threshold: float) -> tuple[int, float] | None:
    scores = (matrix @ query).astype(np.float64)
    scores[~live] = -np.inf
    best = int(np.argmax(scores))
    return (best, float(scores[best])) if scores[best] >= threshold else None


def random_rows(rng: Any, n: int) -> Any:
    return unit(rng.standard_normal((n, DIM)))


def clustered_rows(rng: Any, n: int) -> Any:  # like real embeddings: topics
    centres = rng.standard_normal((40, DIM)) * 3
    return unit(centres[rng.integers(40, size=n)] + rng.standard_normal((n, DIM)))


@pytest.mark.parametrize("make", [random_rows, clustered_rows])
@pytest.mark.parametrize("n", [FIT_AT // 2, FIT_AT * 4])  # before and after the axes fit
def test_the_search_equals_a_brute_force_scan(make: Any, n: int) -> None:
    rng = np.random.default_rng(n)
    matrix = make(rng, n)
    expires = np.where(rng.random(n) < 0.1, NOW - 1, np.inf)
    index = VectorIndex(DIM)
    for start in range(0, n, 500):  # loaded in batches, as from the store
        index.add(
            [
                entry(i, matrix[i], None if expires[i] == np.inf else expires[i])
                for i in range(start, min(n, start + 500))
            ]
        )
    assert (index._axes is not None) == (n >= FIT_AT)
    live = expires > NOW
    for _ in range(60):
        noise = rng.choice([0.002, 0.01, 0.03, 0.1])
        query = unit(matrix[rng.integers(n)] + rng.standard_normal(DIM) * noise)
        for threshold in (0.5, 0.8, 0.9, 0.95, 0.99, float("-inf")):
            want = brute(matrix, live, query, threshold)
            key, score = index.nearest(query.tolist(), NOW, threshold)
            if want is None:
                assert (key, score) == ("", float("-inf"))
            else:
                assert key == f"k{want[0]}" and score == pytest.approx(want[1], abs=1e-4)


def test_dropped_and_replaced_rows() -> None:
    rng = np.random.default_rng(3)
    a, b = random_rows(rng, 2)
    index = VectorIndex(DIM)
    index.add([entry(0, a, key="a"), entry(1, b, key="b")])
    assert index.nearest(a.tolist(), NOW, 0.99)[0] == "a"
    index.drop("a")
    assert index.nearest(a.tolist(), NOW, 0.99) == ("", float("-inf"))
    index.add([entry(2, a, key="b")])  # the same key with another vector: replaced
    assert index.nearest(a.tolist(), NOW, 0.99)[0] == "b"
    assert index.nearest(b.tolist(), NOW, 0.99) == ("", float("-inf"))
    assert index.size == 2 and index.loaded_seq == 3


def test_vectors_of_another_dimension_are_ignored() -> None:
    index = VectorIndex(DIM)
    index.add([entry(0, unit(np.ones(8)))])
    assert index.size == 0 and index.nearest([0.0] * DIM, NOW) == ("", float("-inf"))
