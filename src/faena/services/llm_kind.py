"""The ``llm`` kind: a chat completion as a job step. Runs in the server's local pool, where it
reaches the store (replay records, budgets), the tenant's secrets and the providers; remote
``faena worker`` agents do not serve it.

The tokens of the answer are written to the job's stdout log as they arrive (in small batches),
so the dashboard and ``faena jobs logs --follow`` show them live. The result carries
``content``, ``output`` (the parsed JSON when ``response_schema`` was given), ``model``,
``provider``, ``usage`` and ``guardrails``.
"""

from __future__ import annotations

import time
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

FLUSH_CHARS = 48
FLUSH_S = 0.05


@dataclass(frozen=True, slots=True)
class LlmOutcome:
    succeeded: bool
    result: Any = None
    error: str | None = None
    retryable: bool = True


class _TokenBuffer:
    """Batches streamed tokens into log chunks: a chunk per ~48 characters, line or 50 ms."""

    def __init__(self, sink: ExecutionSink) -> None:
        self._sink = sink
        self._parts: list[str] = []
        self._size = 0
        self._last = time.monotonic()

    def __call__(self, token: str) -> None:
        self._parts.append(token)
        self._size += len(token)
        now = time.monotonic()
        if self._size >= FLUSH_CHARS or "\n" in token or now - self._last >= FLUSH_S:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        if self._parts:
            self._sink.log(LogStream.STDOUT, "".join(self._parts))
            self._parts.clear()
            self._size = 0
        self._last = time.monotonic() if now is None else now


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
