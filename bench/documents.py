"""Documents benchmark: pages per second for text PDFs and for OCR on this CPU, and the
latency of the cache hit path of the ``document.text`` kind.

    .venv/bin/python -m bench.documents [--seconds 10] [--processes 2] [--store sqlite]

Each phase runs for at most ``--seconds`` (and a bounded number of rounds); the reading goes
through the same process pool the worker uses, with the cache off. The cache phase runs the
kind itself on an artefact input against a real store (SQLite file, memory, or PostgreSQL with
``--store postgres``), twice: as a server runs it (``cache_hit``: the first hit reads the store,
metadata joined with the cache row, no bytes; repeated ones are answered by the in-process memo)
and with the memo off (``cache_hit_store``: every hit is that store read). ``--only cache``
runs that phase alone. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.documents import samples

from faena.adapters.blobs.local import LocalDirBlobStore
from faena.domain.jobs import Job, JobSpec
from faena.domain.logs import LogStream
from faena.ports.clock import SystemClock
from faena.services.artefacts import ArtefactService
from faena.worker.kinds.document_memo import ResultMemo
from faena.worker.kinds.documents import DocumentKind, DocumentPool

MAX_ROUNDS = 200
HITS = 2000


class _Sink:
    def log(self, stream: LogStream, data: str) -> None:
        pass


def _text_pdf(pages: int) -> bytes:
    body = [samples.INVOICE, samples.LETTER]
    return samples.text_pdf([body[i % 2] + [f"page {i + 1}"] for i in range(pages)])


async def _pages_per_s(
    pool: DocumentPool, data: bytes, options: dict[str, Any], *, pages: int, seconds: float,
    parallel: int,
) -> dict[str, Any]:  # fmt: skip
    """Read ``data`` ``parallel`` at a time until ``seconds`` pass; pages per second."""
    started = time.perf_counter()
    done = rounds = 0
    while time.perf_counter() - started < seconds and rounds < MAX_ROUNDS:
        await asyncio.gather(*(pool.read(data, "document.text", options) for _ in range(parallel)))
        done += pages * parallel
        rounds += 1
    elapsed = time.perf_counter() - started
    return {"pages": done, "seconds": round(elapsed, 2), "pages_per_s": round(done / elapsed, 2)}


async def _store(kind: str, tmp: Path) -> Any:
    if kind == "memory":
        from faena.adapters.memory.store import MemoryStore

        return MemoryStore()
    if kind == "sqlite":
        from faena.adapters.sqlite.store import SqliteStore

        return SqliteStore(tmp / "bench.db")
    from faena.adapters.postgres.store import PostgresStore

    url = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    return PostgresStore(url, schema=f"faena_bench_docs_{os.getpid()}", min_size=1, max_size=2)


async def _cache_hits(
    pool: DocumentPool, store_kind: str, seconds: float, *, memo: bool
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        store = await _store(store_kind, Path(tmp))
        await store.open()
        try:
            artefacts = ArtefactService(store, LocalDirBlobStore(Path(tmp) / "b"), SystemClock())
            a = await artefacts.put("default", "b.pdf", "application/pdf", _text_pdf(3))
            kind = DocumentKind("document.text", pool, artefacts=artefacts, cache=store,
                                owns_pool=False, memo=ResultMemo() if memo else None)  # fmt: skip
            job = Job.from_spec("bench", JobSpec("document.text", {"artefact": a.id}), 0.0)
            first = await kind.run(job, _Sink())
            assert first.succeeded and first.result["cached"] is False, first.error
            latencies = []
            started = time.perf_counter()
            while len(latencies) < HITS and time.perf_counter() - started < seconds:
                t = time.perf_counter()
                hit = await kind.run(job, _Sink())
                latencies.append((time.perf_counter() - t) * 1000)
                assert hit.result["cached"] is True
            await kind.aclose()
        finally:
            if store_kind == "postgres":
                import asyncpg

                schema = store._schema
                await store.close()
                conn = await asyncpg.connect(store._dsn)
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
                await conn.close()
            else:
                await store.close()
    latencies.sort()
    return {
        "store": store_kind,
        "memo": memo,
        "n": len(latencies),
        "p50_ms": round(statistics.median(latencies), 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 3),
        "max_ms": round(latencies[-1], 3),
    }


async def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase (default 10)")
    parser.add_argument("--processes", type=int, default=2, help="document pool size")
    parser.add_argument("--store", choices=["sqlite", "memory", "postgres"], default="sqlite")
    parser.add_argument("--only", choices=["cache"], help="run only this phase")
    args = parser.parse_args(argv)
    pool = DocumentPool(args.processes)
    await pool.warm()
    if args.only == "cache":
        try:
            return {
                "bench": "documents",
                "cpus": os.cpu_count(),
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "cache_hit": await _cache_hits(pool, args.store, args.seconds, memo=True),
                "cache_hit_store": await _cache_hits(pool, args.store, args.seconds, memo=False),
            }
        finally:
            await pool.aclose()
    try:
        text_pages = 20
        text = await _pages_per_s(
            pool, _text_pdf(text_pages), {"ocr": "never"}, pages=text_pages,
            seconds=args.seconds, parallel=args.processes,
        )  # fmt: skip
        scanned = samples.scanned_pdf([samples.INVOICE, samples.LETTER])
        ocr = {}
        for dpi in (300, 200):
            ocr[f"dpi_{dpi}"] = await _pages_per_s(
                pool,
                scanned,
                {"ocr": "always", "dpi": dpi},
                pages=2,
                seconds=args.seconds,
                parallel=args.processes,
            )
        cache = await _cache_hits(pool, args.store, args.seconds, memo=True)
        cache_store = await _cache_hits(pool, args.store, args.seconds, memo=False)
    finally:
        await pool.aclose()
    return {
        "bench": "documents",
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "processes": args.processes,
        "text_pdf": text,
        "ocr": ocr,
        "cache_hit": cache,
        "cache_hit_store": cache_store,
    }


if __name__ == "__main__":
    result = asyncio.run(main(sys.argv[1:]))
    print(json.dumps(result))
