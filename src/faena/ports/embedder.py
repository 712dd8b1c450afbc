"""The Embedder port: text in, unit-length vectors out. The semantic cache and ``/v1/ask`` only
need this, so another model (a hosted API, a bigger local one) plugs in without touching them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Embedder(Protocol):
    """Turns texts into L2-normalized vectors of ``dimension`` floats, one per text, in order.

    Normalized vectors make cosine similarity a plain dot product, which both the in-process
    index and pgvector's inner-product operator rely on."""

    name: str
    dimension: int

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...
