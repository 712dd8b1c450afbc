"""Tasks the remote-worker benchmarks run (imported by the in-process agents)."""

from __future__ import annotations

import asyncio
import time

import faena


@faena.task
async def bench_stamp(n: int = 50, every_s: float = 0.02) -> int:
    """Log ``n`` lines ``<time.time()> <i>``, one every ``every_s``: delivery latency."""
    job = faena.current_job()
    for i in range(n):
        job.log(f"{time.time():.6f} {i}")
        await asyncio.sleep(every_s)
    return n


@faena.task
async def bench_spew(lines: int = 10_000, per_chunk: int = 100) -> int:
    """Log ``lines`` numbered lines, ``per_chunk`` to a chunk, as fast as they go."""
    job = faena.current_job()
    for start in range(0, lines, per_chunk):
        end = min(start + per_chunk, lines)
        job.log("\n".join(f"line {i}" for i in range(start, end)))
        if start % (per_chunk * 20) == 0:
            await asyncio.sleep(0)
    return lines
