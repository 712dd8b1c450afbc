"""Server-Sent Events for ``GET /v1/jobs/{id}/logs?follow=true``.

One ``event: log`` per stored chunk (``id:`` its cursor, so a client resumes with
``Last-Event-ID``), a ``: keepalive`` comment when nothing was sent for a while, and a final
``event: end`` with the job's state once it is terminal and all of its output was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson

from faena.api.schemas import chunk_to_json
from faena.ports.store import StoredLogChunk
from faena.services.orchestrator import Orchestrator

KEEPALIVE = b": keepalive\n\n"
_DONE = object()
BUFFER = 1000


def log_event(stored: StoredLogChunk) -> bytes:
    data = orjson.dumps(chunk_to_json(stored))
    return b"id: %d\nevent: log\ndata: %s\n\n" % (stored.cursor, data)


def end_event(state: str) -> bytes:
    return b"event: end\ndata: %s\n\n" % orjson.dumps({"state": state})


async def follow_events(
    orchestrator: Orchestrator, tenant: str, job_id: str, after: int, keepalive_s: float
) -> AsyncIterator[bytes]:
    """The event stream. Chunks are read by a separate task so that waiting for the next one
    can time out (to send a keepalive) without cancelling the follow itself."""
    queue: asyncio.Queue[object] = asyncio.Queue(BUFFER)

    async def pump() -> None:
        try:
            async for stored in orchestrator.follow_logs(tenant, job_id, after):
                await queue.put(stored)
        except Exception:
            await queue.put(_DONE)  # the consumer wakes up and re-raises it by awaiting us
            raise
        await queue.put(_DONE)

    reader = asyncio.create_task(pump(), name=f"follow-logs-{job_id}")
    try:
        while True:
            try:
                async with asyncio.timeout(keepalive_s):
                    item = await queue.get()
            except TimeoutError:
                yield KEEPALIVE
                continue
            if item is _DONE:
                break
            assert isinstance(item, StoredLogChunk)
            yield log_event(item)
        await reader  # re-raises what ended the follow, if it failed
        job = await orchestrator.get(tenant, job_id)
        yield end_event(job.state.value)
    finally:
        if not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
