"""An in-process nearest-neighbour index over unit vectors: float32 matrices per
(tenant, namespace, model), fed incrementally from the store by ``seq``.

Used when the store cannot rank vectors itself (SQLite, memory, PostgreSQL without pgvector).
The search is **exact** — it never misses an entry at or above the threshold and never
returns one below — but it reads about a sixth of the matrix for most queries:

- Each row also has a *head*: its coordinates on ``HEAD`` axes — the principal axes of the
  first ``FIT_AT`` rows (the first coordinates until then) — where most of a vector's norm
  lives, in one contiguous ``n x HEAD`` matrix, and the norm of the rest.
- A query first scores every row on the head only (one matrix-vector product, a sixth of the
  full one). By Cauchy-Schwarz, ``q . x <= q_head . x_head + |q_rest| |x_rest|``: rows whose
  bound is below ``min_score`` cannot reach it and are skipped; the few left are scored
  exactly on their full vectors.
- Without a ``min_score`` (or when many rows may reach it) the full matrix is scanned, as a
  plain search does.

Measured with 100,000 entries of 384 dimensions (``bench/semantic_cache.py``): see
docs/ai.md#benchmarks-embeddings-cache-agents.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faena.ports.ai_cache import CacheEntry

_GROW = 1024
HEAD = 64  # coordinates scored for every row
FIT_AT = 1024  # rows from which the rotation is fitted (once)
FIT_SAMPLE = 4096  # at most about this many rows are used to fit it
_FULL_SCAN = 0.2  # above this share of candidate rows, the whole matrix is scanned
_SLACK = 1e-4  # float32 rounding of the bound: a row at the threshold is never skipped


@dataclass(slots=True)
class VectorIndex:
    dimension: int
    loaded_seq: int = 0  # the highest store seq seen
    refreshed_at: float = float("-inf")
    size: int = 0
    _matrix: Any = None  # np.ndarray[capacity, dimension] float32: the vectors
    _head: Any = None  # np.ndarray[capacity, HEAD] float32: their coordinates on the axes
    _rest_norm: Any = None  # np.ndarray[capacity] float32: the norm of what the head misses
    _expires: Any = None  # np.ndarray[capacity] float64 (inf: never; -inf: dropped)
    _axes: Any = None  # np.ndarray[HEAD, dimension] float32, orthonormal rows; None: identity
    _keys: list[str] = field(default_factory=list)
    _rows: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._matrix = np.zeros((_GROW, self.dimension), dtype=np.float32)
        self._head = np.zeros((_GROW, self._h), dtype=np.float32)
        self._rest_norm = np.zeros(_GROW, dtype=np.float32)
        self._expires = np.full(_GROW, -np.inf, dtype=np.float64)

    @property
    def _h(self) -> int:
        return min(HEAD, self.dimension)

    def add(self, entries: list[CacheEntry], *, advance: bool = True) -> None:
        """Insert or replace entries (a key seen again overwrites its row). ``advance=False``
        for an entry this process just wrote: older entries of other writers may still be
        unread, so the scan position stays."""
        rows: list[int] = []
        vectors: list[Any] = []
        expires: list[float] = []
        for entry in entries:
            if len(entry.vector) != self.dimension:
                continue  # another model's vector (or none): never comparable
            row = self._rows.get(entry.key)
            if row is None:
                row = self.size
                self._rows[entry.key] = row
                self._keys.append(entry.key)
                self.size += 1
            rows.append(row)
            vector = entry.vector
            vectors.append(
                np.frombuffer(vector, dtype=np.float32) if isinstance(vector, array) else vector
            )
            expires.append(np.inf if entry.expires_at is None else entry.expires_at)
            if advance:
                self.loaded_seq = max(self.loaded_seq, entry.seq)
        if not rows:
            return
        while self.size > self._matrix.shape[0]:
            self._grow()
        index = np.asarray(rows)
        matrix = np.asarray(vectors, dtype=np.float32)
        self._matrix[index] = matrix
        self._expires[index] = expires
        self._project(index, matrix)
        if self._axes is None and self.size >= FIT_AT and self._h < self.dimension:
            self._fit()

    def drop(self, key: str) -> None:
        row = self._rows.get(key)
        if row is not None:
            self._expires[row] = -np.inf

    def nearest(
        self,
        vector: Sequence[float],
        now: float,
        min_score: float = float("-inf"),
    ) -> tuple[str, float]:
        """The key of the live row with the highest inner product at or above ``min_score``,
        and that product; ("", -inf) when there is none."""
        n = self.size
        if n == 0:
            return "", float("-inf")
        query = np.asarray(vector, dtype=np.float32)
        live = self._expires[:n] > now
        candidates = None
        if min_score != float("-inf") and self._h < self.dimension:
            q_head = query[: self._h] if self._axes is None else self._axes @ query
            q_rest = float(np.sqrt(max(0.0, float(query @ query) - float(q_head @ q_head))))
            bound = self._head[:n] @ q_head
            bound += q_rest * self._rest_norm[:n]
            candidates = np.flatnonzero(live & (bound >= min_score - _SLACK))
            if candidates.size == 0:
                return "", float("-inf")
        if candidates is None or candidates.size > _FULL_SCAN * n:
            scores = self._matrix[:n] @ query
            scores[~live] = -np.inf
            best = int(np.argmax(scores))
            score = float(scores[best])
        else:
            exact = self._matrix[candidates] @ query
            pick = int(np.argmax(exact))
            best, score = int(candidates[pick]), float(exact[pick])
        if score == float("-inf") or score < min_score:
            return "", float("-inf")
        return self._keys[best], score

    def _project(self, index: Any, matrix: Any) -> None:
        head = matrix[:, : self._h] if self._axes is None else matrix @ self._axes.T
        self._head[index] = head
        rest = np.einsum("ij,ij->i", matrix, matrix) - np.einsum("ij,ij->i", head, head)
        self._rest_norm[index] = np.sqrt(np.maximum(rest, 0.0))

    def _fit(self) -> None:
        """Take the principal axes of the rows so far (uncentred: the directions holding the
        most squared norm) as the head's axes, so the bound prunes more; exact either way."""
        n = self.size
        sample = self._matrix[: n : max(1, n // FIT_SAMPLE)]
        _, _, axes = np.linalg.svd(sample, full_matrices=False)  # rows: orthonormal axes
        if axes.shape[0] < self._h:
            return
        self._axes = np.ascontiguousarray(axes[: self._h], dtype=np.float32)
        self._project(np.arange(n), self._matrix[:n])

    def _grow(self) -> None:
        capacity = self._matrix.shape[0] * 2
        keep = min(self.size, self._matrix.shape[0])
        matrix = np.zeros((capacity, self.dimension), dtype=np.float32)
        head = np.zeros((capacity, self._h), dtype=np.float32)
        rest = np.zeros(capacity, dtype=np.float32)
        expires = np.full(capacity, -np.inf, dtype=np.float64)
        matrix[:keep] = self._matrix[:keep]
        head[:keep] = self._head[:keep]
        rest[:keep] = self._rest_norm[:keep]
        expires[:keep] = self._expires[:keep]
        self._matrix, self._head, self._rest_norm, self._expires = matrix, head, rest, expires
