"""The semantic cache with 100,000 entries, and the embedding model's throughput on this CPU.

    python -m bench.semantic_cache [--entries 100000] [--lookups 300] [--store sqlite|memory]
                                   [--real 2000] [--threshold 0.95]

1. ``embed``: all-MiniLM-L6-v2 (NumPy, faena's embedder) on 512 short texts in batches of 32
   (texts/s), and one text at a time (ms per text: what a cache lookup pays).
2. ``fill``: ``--entries`` entries put through the store (SQLite file by default): ``--real``
   (2,000) with real embeddings of distinct sentences, the rest with synthetic unit vectors
   (random normal, normalized; embedding 100,000 texts would take the model ~15 min here).
3. ``load``: the first lookup builds the in-process index from the store (cold start).
4. ``search``: ``--lookups`` nearest-neighbour searches of the warm index with the vector of a
   paraphrase of a cached sentence, at ``--threshold`` (the part that grows with the cache
   size; target p99 < 20 ms at 100,000 entries); ``search_full``: the same without a threshold
   (every row scored: what the index cost before it pruned with the head bound).
5. ``lookup``: ``--lookups`` full ``SemanticCache.get`` calls with text (exact-match query +
   embedding of the text + search + reading the hit), half paraphrases of cached sentences.

Prints one JSON line per phase. Bounded: a fixed number of operations, no loop on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as faena's composition root does

import numpy as np

from faena.adapters.minilm import MiniLmEmbedder
from faena.services.semantic_cache import CacheSettings, SemanticCache, text_key

SUBJECTS = [
    "invoice",
    "sales report",
    "meeting notes",
    "contract",
    "payroll",
    "shipment",
    "support ticket",
    "purchase order",
    "budget",
    "customer email",
]
VERBS = [
    "summarize",
    "send",
    "translate",
    "approve",
    "archive",
    "review",
    "extract totals from",
    "classify",
    "forward",
    "check",
]
WHEN = [
    "from last month",
    "for this week",
    "of 2025",
    "from the Berlin office",
    "before Friday",
    "for the board",
    "from supplier %d",
    "for customer %d",
    "in French",
    "as a PDF",
]


def sentences(n: int) -> list[str]:
    out = []
    for i in range(n):
        when = WHEN[(i // 100) % len(WHEN)]
        when = when % i if "%d" in when else f"{when} #{i}"
        out.append(f"{VERBS[i % 10]} the {SUBJECTS[(i // 10) % 10]} {when}")
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def line(phase: str, **fields: Any) -> None:
    print(json.dumps({"phase": phase, **fields}), flush=True)


async def open_store(kind: str, folder: Path) -> Any:
    if kind == "memory":
        from faena.adapters.memory.store import MemoryStore

        store: Any = MemoryStore()
    else:
        from faena.adapters.sqlite.store import SqliteStore

        store = SqliteStore(folder / "cache.db")
    await store.open()
    return store


async def main(args: argparse.Namespace) -> None:
    embedder = MiniLmEmbedder()
    started = time.perf_counter()
    embedder.warm()
    load_s = time.perf_counter() - started
    texts = sentences(512)
    started = time.perf_counter()
    await embedder.embed(texts)
    batch_rate = len(texts) / (time.perf_counter() - started)
    singles = []
    for text in texts[:50]:
        t = time.perf_counter()
        await embedder.embed([text])
        singles.append((time.perf_counter() - t) * 1000)
    line(
        "embed",
        model=embedder.name,
        load_s=round(load_s, 3),
        batch32_texts_per_s=round(batch_rate, 1),
        single_ms_p50=round(pct(singles, 50), 2),
        single_ms_p99=round(pct(singles, 99), 2),
    )

    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(args.store, Path(tmp))
        try:
            await run_cache(args, store, embedder)
        finally:
            await store.close()


async def run_cache(args: argparse.Namespace, store: Any, embedder: MiniLmEmbedder) -> None:
    from faena.ports.ai_cache import PutCacheEntryParams

    real = sentences(args.real)
    vectors = await embedder.embed(real)
    rng = np.random.default_rng(7)
    synthetic = rng.standard_normal((max(0, args.entries - len(real)), embedder.dimension))
    synthetic /= np.linalg.norm(synthetic, axis=1, keepdims=True)
    now = time.time()
    started = time.perf_counter()

    def params(i: int) -> PutCacheEntryParams:
        if i < len(real):
            text, vector = real[i], tuple(vectors[i])
        else:
            text, vector = f"synthetic entry {i}", tuple(synthetic[i - len(real)].tolist())
        return PutCacheEntryParams(
            "bench", "ns", text_key(text), text, vector, {"answer": i}, now, None, embedder.name
        )

    for start in range(0, args.entries, 1000):
        await asyncio.gather(
            *(store.cache_put(params(i)) for i in range(start, min(start + 1000, args.entries)))
        )
    line(
        "fill",
        entries=args.entries,
        store=args.store,
        seconds=round(time.perf_counter() - started, 1),
    )

    cache = SemanticCache(
        store, embedder, settings=CacheSettings(threshold=args.threshold, refresh_s=3600)
    )
    started = time.perf_counter()
    index = await cache._index("bench", "ns", time.time())
    line("load", entries=index.size, seconds=round(time.perf_counter() - started, 2))

    queries = await embedder.embed([f"please {real[i % len(real)]}" for i in range(50)])
    for phase, threshold in (("search", args.threshold), ("search_full", float("-inf"))):
        searches, cpu, hits = [], [], 0
        for i in range(args.lookups):
            query = queries[i % len(queries)]
            t, c = time.perf_counter(), time.process_time()
            key, _ = index.nearest(query, time.time(), threshold)
            searches.append((time.perf_counter() - t) * 1000)
            cpu.append((time.process_time() - c) * 1000)
            hits += bool(key)
        # CPU time too: on a shared machine the wall time includes waiting for a core.
        line(
            phase,
            entries=index.size,
            lookups=args.lookups,
            threshold=threshold,
            hits=hits,
            p50_ms=round(pct(searches, 50), 2),
            p99_ms=round(pct(searches, 99), 2),
            cpu_p50_ms=round(pct(cpu, 50), 2),
            cpu_p99_ms=round(pct(cpu, 99), 2),
            target_p99_ms=20,
        )

    lookups, hits = [], 0
    rnd = random.Random(3)
    for i in range(args.lookups):
        base = real[rnd.randrange(len(real))]
        text = base if i % 2 else f"please {base}"
        t = time.perf_counter()
        hit = await cache.get("bench", "ns", text)
        lookups.append((time.perf_counter() - t) * 1000)
        hits += hit is not None
    line(
        "lookup",
        entries=index.size,
        lookups=args.lookups,
        hits=hits,
        p50_ms=round(pct(lookups, 50), 2),
        p99_ms=round(pct(lookups, 99), 2),
        note="includes embedding the text with the CPU model",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=300)
    parser.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument("--real", type=int, default=2000, help="entries with real embeddings")
    parser.add_argument("--threshold", type=float, default=0.95)
    asyncio.run(main(parser.parse_args()))
