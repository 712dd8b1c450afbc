"""The ``llm`` kind: a chat completion as a job step. Runs in the server's local pool, where it
reaches the store (replay records, budgets), the tenant's secrets and the providers; remote
``faena worker`` agents do not serve it.

The tokens of the answer are written to the job's stdout log as they arrive (batched per 50 ms),
so the dashboard and ``faena jobs logs --follow`` show them live. The result carries
``content``, ``output`` (the parsed JSON when ``response_schema`` was given), ``model``,
``provider``, ``usage`` and ``guardrails``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from faena.domain.errors import Unavailable
from faena.domain.jobs import Job
from faena.domain.llm import ChatResult, LlmRefused
from faena.domain.llm_parse import parse_chat
from faena.domain.logs import LogStream
from faena.ports.executor import ExecutionSink
from faena.services.llm import LlmService

FLUSH_S = 0.05  # a streamed token reaches the log at most this late
FLUSH_CHARS = 4096  # or as soon as this much is buffered


@dataclass(frozen=True, slots=True)
class LlmOutcome:
    succeeded: bool
    result: Any = None
    error: str | None = None
    retryable: bool = True


class _TokenBuffer:
    """Batches streamed tokens into log chunks: everything that arrived within 50 ms is one
    chunk (a timer flushes it even when the stream pauses), so a fast answer costs one or two
    log writes and a slow one still shows up live, 20 times a second."""

    def __init__(self, sink: ExecutionSink, flush_s: float = FLUSH_S) -> None:
        self._sink = sink
        self._flush_s = flush_s
        self._parts: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, token: str) -> None:
        if not token:
            return
        self._parts.append(token)
        self._size += len(token)
        if self._size >= FLUSH_CHARS:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._flush_s, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._parts:
            self._sink.log(LogStream.STDOUT, "".join(self._parts))
            self._parts.clear()
            self._size = 0


class LlmKind:
    """The :class:`~faena.ports.executor.KindHandler` of ``llm``. ``workflow_of(tenant, run_id)``
    names the workflow of a step's run (for workflow budgets)."""

    def __init__(
        self,
        service: LlmService,
        workflow_of: Callable[[str, str], Awaitable[str | None]] | None = None,
    ) -> None:
        self._service = service
        self._workflow_of = workflow_of

    def validate(self, payload: Any) -> None:
        parse_chat(payload)

    async def run(self, job: Job, sink: ExecutionSink) -> LlmOutcome:
        request = parse_chat(job.payload)
        stream = not (isinstance(job.payload, dict) and job.payload.get("stream") is False)
        buffer = _TokenBuffer(sink) if stream else None
        workflow = await self._workflow(job)
        try:
            result = await self._service.chat(
                job.tenant,
                request,
                job_id=job.id,
                attempt=job.attempts,
                call_index=0,
                workflow=workflow,
                on_token=buffer,
            )
        except LlmRefused as exc:
            return LlmOutcome(
                False, {"guardrails": list(exc.guardrails)}, exc.message, retryable=False
            )
        except Unavailable as exc:
            return LlmOutcome(False, None, exc.message, retryable=True)
        finally:
            if buffer is not None:
                buffer.flush()
        if result.replayed or result.cached:
            if result.replayed:
                note = "replayed the recorded answer of an earlier attempt"
            else:
                note = f"answered from the cache ({result.cache_match} match"
                if result.cache_match == "semantic":
                    note += f", similarity {result.cache_similarity}"
                note += ")"
            sink.log(LogStream.STDERR, note + "\n")
            if result.content:
                sink.log(LogStream.STDOUT, result.content)
        return LlmOutcome(True, job_result(result))

    async def _workflow(self, job: Job) -> str | None:
        key = job.idempotency_key or ""
        if self._workflow_of is None or not key.startswith("wf:"):
            return None
        run_id = key.split(":", 2)[1]
        return await self._workflow_of(job.tenant, run_id)

    async def aclose(self) -> None:
        await self._service.aclose()  # the providers' HTTP clients


def job_result(result: ChatResult) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "content": result.content,
        "model": result.model,
        "provider": result.provider,
        "usage": {
            "tokens_in": result.tokens_in,
            "tokens_out": result.tokens_out,
            "cost_usd": result.cost,
        },
        "guardrails": list(result.guardrails),
        "replayed": result.replayed,
        "cached": result.cached,
    }
    if result.cached:
        doc["cache"] = {"match": result.cache_match, "similarity": result.cache_similarity}
    if result.output is not None:
        doc["output"] = result.output
    if result.tool_calls:
        doc["tool_calls"] = [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in result.tool_calls
        ]
    return doc
