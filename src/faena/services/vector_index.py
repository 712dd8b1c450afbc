"""An in-process nearest-neighbour index over unit vectors: one float32 matrix per
(tenant, namespace, model), fed incrementally from the store by ``seq``.

Used when the store cannot rank vectors itself (SQLite, memory, PostgreSQL without pgvector).
An exact scan (one matrix-vector product) is enough at the sizes a cache reaches: 100,000
entries of 384 floats is a 150 MB read, a few milliseconds on one core, and never wrong.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faena.ports.ai_cache import CacheEntry

_GROW = 1024


@dataclass(slots=True)
class VectorIndex:
    dimension: int
    loaded_seq: int = 0  # the highest store seq seen
    refreshed_at: float = float("-inf")
    size: int = 0
    _matrix: Any = None  # np.ndarray[size_capacity, dimension] float32
    _expires: Any = None  # np.ndarray[size_capacity] float64 (inf: never)
    _keys: list[str] = field(default_factory=list)
    _rows: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._matrix = np.zeros((_GROW, self.dimension), dtype=np.float32)
        self._expires = np.full(_GROW, -np.inf, dtype=np.float64)

    def add(self, entries: list[CacheEntry], *, advance: bool = True) -> None:
        """Insert or replace entries (a key seen again overwrites its row). ``advance=False``
        for an entry this process just wrote: older entries of other writers may still be
        unread, so the scan position stays."""
        for entry in entries:
            if len(entry.vector) != self.dimension:
                continue  # another model's vector: never comparable
            row = self._rows.get(entry.key)
            if row is None:
                row = self.size
                if row >= self._matrix.shape[0]:
                    self._grow()
                self._rows[entry.key] = row
                self._keys.append(entry.key)
                self.size += 1
            self._matrix[row] = (
                np.frombuffer(entry.vector, dtype=np.float32)
                if isinstance(entry.vector, array)
                else entry.vector
            )
            self._expires[row] = np.inf if entry.expires_at is None else entry.expires_at
            if advance:
                self.loaded_seq = max(self.loaded_seq, entry.seq)

    def drop(self, key: str) -> None:
        row = self._rows.get(key)
        if row is not None:
            self._expires[row] = -np.inf

    def nearest(self, vector: list[float] | tuple[float, ...], now: float) -> tuple[str, float]:
        """The key of the live row with the highest inner product, and that product;
        ("", -inf) when there is none."""
        if self.size == 0:
            return "", float("-inf")
        query = np.asarray(vector, dtype=np.float32)
        scores = self._matrix[: self.size] @ query
        scores[self._expires[: self.size] <= now] = -np.inf
        best = int(np.argmax(scores))
        score = float(scores[best])
        if score == float("-inf"):
            return "", score
        return self._keys[best], score

    def _grow(self) -> None:
        capacity = self._matrix.shape[0] * 2
        matrix = np.zeros((capacity, self.dimension), dtype=np.float32)
        matrix[: self.size] = self._matrix[: self.size]
        expires = np.full(capacity, -np.inf, dtype=np.float64)
        expires[: self.size] = self._expires[: self.size]
        self._matrix, self._expires = matrix, expires
