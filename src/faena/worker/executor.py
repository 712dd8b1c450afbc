"""Runs one job and reports its outcome.

The executor knows nothing of stores, HTTP or servers: it is handed a :class:`Job` and a sink
for its output, and returns an :class:`Outcome`. The local pool of ``faena up`` and a remote
agent share it.

- A job's own failure never raises: an exception becomes ``Outcome(succeeded=False,
  error="ExcType: message")``, and its traceback goes to the job's stderr log.
- ``job.timeout_s`` (or the task's declared timeout) is enforced: ``"timed out after Ns"``,
  retryable. See :mod:`faena.worker.functions` for what a timeout can stop in a thread or a
  process.
- When the asyncio task running :meth:`Executor.run` is cancelled (the job was cancelled, the
  worker shuts down), what runs is stopped (the shell's process group is killed, the coroutine
  cancelled) and :class:`asyncio.CancelledError` propagates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

from faena.domain.auth import code_running_reason
from faena.domain.errors import ValidationError
from faena.domain.jobs import Job
from faena.ports.executor import ExecutionSink, KindDefaults, KindHandler, OutcomeLike
from faena.worker.functions import FunctionRunner
from faena.worker.kinds import BUILTIN_KINDS
from faena.worker.kinds.payloads import parse_http, parse_shell, parse_sleep
from faena.worker.kinds.shell import DEFAULT_GRACE_S, run_shell
from faena.worker.outcome import (
    SUCCEEDED_EMPTY,
    Outcome,
    PermanentError,
    describe,
    failed,
    timed_out,
)
from faena.worker.registry import TaskRegistry, default_registry

if TYPE_CHECKING:
    from faena.worker.kinds.http import HttpKind

__all__ = ["ExecutionSink", "Executor", "KindDefaults", "Outcome", "PermanentError"]

_SHELL_REFUSED = failed("this worker does not run shell jobs (shell is disabled)", retryable=False)


class Executor:
    """Runs the built-in kinds and the functions of a :class:`TaskRegistry`.

    ``allow_shell=False`` refuses ``shell`` jobs (and leaves it out of :meth:`kinds`) and any
    other job that runs code (an ``agent`` starting an MCP server command);
    ``cpu_workers`` sizes the process pool of ``cpu=True`` tasks (default: the CPU count);
    ``thread_workers`` the thread pool of plain functions; ``kill_grace_s`` is how long a shell
    command's process group has between SIGTERM and SIGKILL; ``handlers`` are the kinds that
    feature areas plug in (``llm``, ``email.send``, ``ocr`` …), by name.
    """

    def __init__(
        self,
        registry: TaskRegistry | None = None,
        *,
        allow_shell: bool = True,
        cpu_workers: int | None = None,
        thread_workers: int | None = None,
        kill_grace_s: float = DEFAULT_GRACE_S,
        handlers: Mapping[str, KindHandler] | None = None,
    ) -> None:
        self._registry = registry if registry is not None else default_registry
        self._allow_shell = allow_shell
        self._builtins = BUILTIN_KINDS if allow_shell else BUILTIN_KINDS - {"shell"}
        self._functions = FunctionRunner(cpu_workers=cpu_workers, thread_workers=thread_workers)
        self._kill_grace_s = kill_grace_s
        self._http: HttpKind | None = None
        self._handlers = dict(handlers or {})
        self._kinds: tuple[frozenset[str], frozenset[str]] | None = None

    def kinds(self) -> frozenset[str]:
        """The built-in kinds this worker runs, the plugged-in ones and every registered task
        (asked on every submit: the union is kept until a task registers)."""
        names = self._registry.names()
        if self._kinds is None or self._kinds[0] != names:
            self._kinds = (names, self._builtins | self._handlers.keys() | names)
        return self._kinds[1]

    def defaults(self, kind: str) -> KindDefaults | None:
        """What ``@task(retries=, timeout=, queue=)`` declared for ``kind``, if anything."""
        task = self._registry.get(kind)
        if task is None or (
            task.max_attempts is None and task.timeout_s is None and task.queue is None
        ):
            return None
        return KindDefaults(
            max_attempts=task.max_attempts, timeout_s=task.timeout_s, queue=task.queue
        )

    async def run(self, job: Job, sink: ExecutionSink) -> OutcomeLike:
        """Run ``job`` once and say how it went. Raises only ``CancelledError``."""
        kind = job.kind
        if kind == "noop":
            return SUCCEEDED_EMPTY
        handler = self._handlers.get(kind)
        if handler is not None:
            if not self._allow_shell:
                reason = code_running_reason(kind, job.payload)
                if reason is not None:  # an agent's MCP server command is a process too
                    return failed(
                        f"this worker does not run code (shell is disabled): {reason} need a "
                        "worker that allows shell",
                        retryable=False,
                    )
            return await _run_handler(handler, job, sink)
        task = self._registry.get(kind)
        if task is not None:
            timeout_s = job.timeout_s if job.timeout_s is not None else task.timeout_s
            return await self._functions.run(task, job, sink, timeout_s)
        try:
            if kind == "sleep":
                return await _sleep(parse_sleep(job.payload), job.timeout_s)
            if kind == "shell":
                if not self._allow_shell:
                    return _SHELL_REFUSED
                spec = parse_shell(job.payload)
                return await run_shell(
                    spec, sink, timeout_s=job.timeout_s, grace_s=self._kill_grace_s
                )
            if kind == "http":
                return await self._run_http(job)
        except ValidationError as exc:
            return failed(exc.message, retryable=False)
        return failed(f"unknown kind {kind!r} on this worker", retryable=False)

    async def _run_http(self, job: Job) -> Outcome:
        spec = parse_http(job.payload)
        if self._http is None:
            from faena.worker.kinds.http import HttpKind

            self._http = HttpKind()
        if job.timeout_s is None:
            return await self._http.run(spec)
        try:
            async with asyncio.timeout(job.timeout_s):
                return await self._http.run(spec)
        except TimeoutError:
            return timed_out(job.timeout_s)

    async def aclose(self) -> None:
        """Close the shared HTTP client and stop the thread and process pools."""
        if self._http is not None:
            await self._http.aclose()
        for handler in self._handlers.values():
            await handler.aclose()
        await self._functions.aclose()


async def _run_handler(handler: KindHandler, job: Job, sink: ExecutionSink) -> OutcomeLike:
    try:
        if job.timeout_s is None:
            return await handler.run(job, sink)
        try:
            async with asyncio.timeout(job.timeout_s):
                return await handler.run(job, sink)
        except TimeoutError:
            return timed_out(job.timeout_s)
    except ValidationError as exc:
        return failed(exc.message, retryable=False)
    except Exception as exc:  # a plug-in's bug fails the attempt, never the worker
        return failed(describe(exc))


async def _sleep(seconds: float, timeout_s: float | None) -> Outcome:
    if timeout_s is not None and timeout_s < seconds:
        await asyncio.sleep(timeout_s)
        return timed_out(timeout_s)
    await asyncio.sleep(seconds)
    return SUCCEEDED_EMPTY
