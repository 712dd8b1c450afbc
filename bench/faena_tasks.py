"""The faena benchmark probe: ``faena up --import bench.faena_tasks``.

``probe`` is an ``async def``, so it runs on the worker's event loop (faena's cheapest path,
like the peers' async no-op bodies). Its first line calls :func:`record` with the payload's
``enqueued_at`` (``time.time()`` taken by the driver just before its HTTP request), so the
measured delay is request + validation + store + wake-up + claim + dispatch, exactly as for
the peers. The output directory comes from ``BENCH_OUT_DIR`` in the server's environment.
"""

from __future__ import annotations

from bench.peers._common import record

import faena


@faena.task
async def probe(enqueued_at: float = 0.0) -> None:
    record(enqueued_at)
