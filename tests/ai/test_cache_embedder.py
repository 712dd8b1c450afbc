"""The NumPy all-MiniLM-L6-v2 gives sentence-transformers' embeddings.

``minilm_reference.json`` holds vectors computed once by sentence-transformers 6.2 on PyTorch
2.13 (CPU) from the same package's weights (docs/ai.md shows the snippet); the NumPy forward
pass must agree to 1e-5 per component.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.ai.cache_support import real_embedder

REFERENCE = Path(__file__).with_name("minilm_reference.json")


async def test_matches_sentence_transformers() -> None:
    reference = json.loads(REFERENCE.read_text())
    vectors = np.array(await real_embedder().embed(reference["texts"]))
    assert np.abs(vectors - np.array(reference["vectors"])).max() < 1e-5


async def test_vectors_are_unit_length_and_ordered() -> None:
    texts = ["a much longer sentence about quarterly invoices and payments", "short"]
    vectors = np.array(await real_embedder().embed(texts))
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    alone = np.array(await real_embedder().embed(["short"]))
    assert np.abs(alone[0] - vectors[1]).max() < 1e-5


async def test_empty_input_embeds_nothing() -> None:
    assert await real_embedder().embed([]) == []
