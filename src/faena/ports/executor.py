"""The Executor port: what runs a job's code. The local pool calls it in-process; a remote agent
implements the same runtime behind the worker protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from faena.domain.jobs import Job
from faena.domain.logs import LogStream


@dataclass(frozen=True, slots=True)
class KindDefaults:
    """Defaults a kind declares (``@faena.task(retries=, timeout=, queue=)``), applied at submit
    when the client did not say."""

    max_attempts: int | None = None
    timeout_s: float | None = None
    queue: str | None = None


class ExecutionSink(Protocol):
    def log(self, stream: LogStream, data: str) -> None: ...


class ProgressSink(Protocol):
    """A sink that also takes progress reports (the pool's and the agent's; a sink without
    ``progress`` drops them)."""

    def progress(self, fraction: float, message: str = "") -> None: ...


class OutcomeLike(Protocol):
    @property
    def succeeded(self) -> bool: ...
    @property
    def result(self) -> Any: ...
    @property
    def error(self) -> str | None: ...
    @property
    def retryable(self) -> bool: ...


class KindHandler(Protocol):
    """A built-in kind supplied by a feature area (``llm``, ``email.send``, ``ocr`` …) rather than
    a user's ``@faena.task``. The composition root hands them to the executor by kind name."""

    def validate(self, payload: Any) -> None:
        """Raise :class:`faena.domain.errors.ValidationError` for a bad payload (called at
        submit, so the client hears of it at once)."""
        ...

    async def run(self, job: Job, sink: ExecutionSink) -> OutcomeLike:
        """Run one attempt. A failure is an outcome, not an exception; the executor applies
        ``job.timeout_s`` around this call."""
        ...

    async def aclose(self) -> None: ...


class Executor(Protocol):
    def kinds(self) -> frozenset[str]: ...

    def defaults(self, kind: str) -> KindDefaults | None: ...

    async def run(self, job: Job, sink: ExecutionSink) -> OutcomeLike: ...

    async def aclose(self) -> None: ...
