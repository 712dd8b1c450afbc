"""Registered Python functions (``@faena.task``): on the loop, in a thread or in a process.

The payload becomes the arguments: an object → keyword arguments, ``null`` → none, anything
else → one positional argument. A payload the signature does not accept fails the job without
retries, and so does a result that is not JSON.

Where each function runs, and what a timeout can do there:

- ``async def``: on the worker's event loop; a timeout or a cancellation cancels the coroutine.
- a plain function: in a thread of the runner's pool. A thread cannot be killed: on a timeout
  the attempt ends as timed out but the function keeps running until it returns (its result is
  dropped). On a cancellation likewise.
- ``cpu=True``: in a process of a lazily started ``ProcessPoolExecutor``. The child imports the
  function's module and looks the function up by its registered name (then by its qualified
  name), so it must be defined at module level of an importable module. Its stdout and stderr
  are captured in the child and sent to the log when it returns. A timed-out or cancelled call
  is abandoned: its process stays busy until the function returns, or until :meth:`aclose`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import importlib
import inspect
import io
import multiprocessing
import os
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import orjson

from faena.domain.jobs import Job
from faena.domain.logs import LogStream
from faena.ports.executor import ExecutionSink
from faena.worker.context import JobContext, bind, unbind
from faena.worker.outcome import (
    NotJsonError,
    Outcome,
    PermanentError,
    describe,
    dump_json,
    failed,
    not_json,
    timed_out,
    to_json_value,
)
from faena.worker.registry import Task, default_registry

DEFAULT_THREAD_WORKERS = 64


class FunctionRunner:
    """Runs :class:`Task` functions; owns the thread pool and the process pool."""

    def __init__(
        self, *, cpu_workers: int | None = None, thread_workers: int | None = None
    ) -> None:
        self._cpu_workers = cpu_workers or os.cpu_count() or 1
        self._thread_workers = thread_workers or DEFAULT_THREAD_WORKERS
        self._threads: ThreadPoolExecutor | None = None
        self._processes: ProcessPoolExecutor | None = None

    async def run(
        self, task: Task, job: Job, sink: ExecutionSink, timeout_s: float | None
    ) -> Outcome:
        payload = job.payload
        if payload is None:
            args: tuple[Any, ...] = ()
            kwargs: dict[str, Any] = {}
        elif type(payload) is dict:
            args, kwargs = (), payload
        else:
            args, kwargs = (payload,), {}
        if task.is_async:
            return await self._run_async(
                task, job, sink, timeout_s=timeout_s, args=args, kwargs=kwargs
            )
        if task.cpu:
            return await self._run_in_process(
                task, job, sink, timeout_s=timeout_s, args=args, kwargs=kwargs
            )
        return await self._run_in_thread(
            task, job, sink, timeout_s=timeout_s, args=args, kwargs=kwargs
        )

    async def _run_async(
        self,
        task: Task,
        job: Job,
        sink: ExecutionSink,
        *,
        timeout_s: float | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Outcome:
        token = bind(
            JobContext(
                job_id=job.id,
                attempt=job.attempts,
                tenant=job.tenant,
                kind=job.kind,
                sink=sink,
                loop=asyncio.get_running_loop(),
            )
        )
        deadline: asyncio.Timeout | None = None
        try:
            coro = task.fn(*args, **kwargs)
            if timeout_s is None:
                result = await coro
            else:
                async with asyncio.timeout(timeout_s) as deadline:
                    result = await coro
        except TimeoutError as exc:
            if deadline is not None and deadline.expired():
                return timed_out(timeout_s or 0)
            return _failure(task, exc, args, kwargs, sink)
        except asyncio.CancelledError as exc:
            if _being_cancelled():
                raise
            return _failure(task, exc, args, kwargs, sink)
        except Exception as exc:
            return _failure(task, exc, args, kwargs, sink)
        finally:
            unbind(token)
        return _success(task, result)

    async def _run_in_thread(
        self,
        task: Task,
        job: Job,
        sink: ExecutionSink,
        *,
        timeout_s: float | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Outcome:
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        job_context = JobContext(
            job_id=job.id,
            attempt=job.attempts,
            tenant=job.tenant,
            kind=job.kind,
            sink=sink,
            loop=loop,
        )
        context.run(bind, job_context)
        call = functools.partial(context.run, task.fn, *args, **kwargs)
        deadline: asyncio.Timeout | None = None
        try:
            async with asyncio.timeout(timeout_s) as deadline:
                result = await loop.run_in_executor(self._thread_pool(), call)
        except TimeoutError as exc:
            if deadline is not None and deadline.expired():
                return timed_out(timeout_s or 0)
            return _failure(task, exc, args, kwargs, sink)
        except asyncio.CancelledError as exc:
            if _being_cancelled():
                raise
            return _failure(task, exc, args, kwargs, sink)
        except Exception as exc:
            return _failure(task, exc, args, kwargs, sink)
        return _success(task, result)

    async def _run_in_process(
        self,
        task: Task,
        job: Job,
        sink: ExecutionSink,
        *,
        timeout_s: float | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Outcome:
        qualname = task.fn.__qualname__
        if "<locals>" in qualname:
            return failed(
                f"cpu=True task {task.name!r} must be defined at module level so the process "
                "pool can import it",
                retryable=False,
            )
        call = ChildCall(
            module=task.module,
            qualname=qualname,
            name=task.name,
            args=args,
            kwargs=kwargs,
            job_id=job.id,
            attempt=job.attempts,
            tenant=job.tenant,
            kind=job.kind,
        )
        loop = asyncio.get_running_loop()
        pool = self._process_pool()
        deadline: asyncio.Timeout | None = None
        try:
            async with asyncio.timeout(timeout_s) as deadline:
                reply = await loop.run_in_executor(pool, run_in_child, call)
        except TimeoutError as exc:
            if deadline is not None and deadline.expired():
                sink.log(
                    LogStream.SYSTEM,
                    "timed out; the process keeps running until the function returns\n",
                )
                return timed_out(timeout_s or 0)
            return _failure(task, exc, args, kwargs, sink)
        except BrokenProcessPool as exc:
            if self._processes is pool:  # the next call starts a fresh pool
                self._processes = None
                pool.shutdown(wait=False, cancel_futures=True)
            return failed(f"the worker process running the task died: {describe(exc)}")
        except Exception as exc:  # e.g. arguments that cannot be pickled
            return _failure(task, exc, args, kwargs, sink)
        if reply.stdout:
            sink.log(LogStream.STDOUT, reply.stdout)
        if reply.stderr:
            sink.log(LogStream.STDERR, reply.stderr)
        if reply.error is not None:
            return failed(reply.error, retryable=reply.retryable)
        return Outcome(succeeded=True, result=orjson.loads(reply.result_json))

    def _thread_pool(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(
                max_workers=self._thread_workers, thread_name_prefix="faena-task"
            )
        return self._threads

    def _process_pool(self) -> ProcessPoolExecutor:
        if self._processes is None:
            methods = multiprocessing.get_all_start_methods()
            # Never fork: the worker has threads (event loop helpers, the thread pool).
            method = "forkserver" if "forkserver" in methods else "spawn"
            self._processes = ProcessPoolExecutor(
                max_workers=self._cpu_workers, mp_context=multiprocessing.get_context(method)
            )
        return self._processes

    async def aclose(self) -> None:
        """Stop both pools. Processes still running abandoned calls are terminated; threads
        cannot be, and keep running until their function returns."""
        if self._threads is not None:
            threads, self._threads = self._threads, None
            threads.shutdown(wait=False, cancel_futures=True)
        if self._processes is not None:
            processes, self._processes = self._processes, None
            children = list((getattr(processes, "_processes", None) or {}).values())
            processes.shutdown(wait=False, cancel_futures=True)
            for child in children:
                if child.is_alive():
                    child.terminate()
            await asyncio.to_thread(processes.shutdown, wait=True)


def _being_cancelled() -> bool:
    """True when this task is being cancelled; a CancelledError the function raised on its own
    (say, from a future it cancelled) is an ordinary failure."""
    current = asyncio.current_task()
    return current is None or current.cancelling() > 0


def _success(task: Task, result: Any) -> Outcome:
    try:
        return Outcome(succeeded=True, result=to_json_value(result))
    except NotJsonError as exc:
        return not_json(task.name, str(exc))


def _failure(
    task: Task,
    exc: BaseException,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    sink: ExecutionSink,
) -> Outcome:
    if isinstance(exc, TypeError):
        problem = binding_problem(task.fn, args, kwargs)
        if problem is not None:
            return failed(f"bad payload for task {task.name!r}: {problem}", retryable=False)
    sink.log(LogStream.STDERR, "".join(traceback.format_exception(exc)))
    return failed(describe(exc), retryable=not isinstance(exc, PermanentError))


def binding_problem(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> str | None:
    """Why ``fn`` cannot be called with these arguments, or None if it can."""
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as exc:
        return str(exc)
    except ValueError:  # no signature to check (some builtins)
        return None
    return None


# --- the process pool's side -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChildCall:
    module: str
    qualname: str
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    job_id: str
    attempt: int
    tenant: str
    kind: str


@dataclass(frozen=True, slots=True)
class ChildReply:
    result_json: bytes = b"null"
    error: str | None = None
    retryable: bool = True
    stdout: str = ""
    stderr: str = ""


class _BufferSink:
    def __init__(self, stdout: io.StringIO) -> None:
        self._stdout = stdout

    def log(self, stream: LogStream, data: str) -> None:
        self._stdout.write(data)


def run_in_child(call: ChildCall) -> ChildReply:
    """Runs in a pool process: find the function, call it with output captured, encode the
    result. Never raises, so the parent always gets the captured output back."""
    try:
        fn = _resolve(call)
    except Exception as exc:
        return ChildReply(
            error=f"cannot load task {call.name!r} from module {call.module!r}: {describe(exc)}",
            retryable=False,
        )
    stdout, stderr = io.StringIO(), io.StringIO()
    job_context = JobContext(
        job_id=call.job_id,
        attempt=call.attempt,
        tenant=call.tenant,
        kind=call.kind,
        sink=_BufferSink(stdout),
    )
    token = bind(job_context)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            result = fn(*call.args, **call.kwargs)
    except Exception as exc:
        problem = (
            binding_problem(fn, call.args, call.kwargs) if isinstance(exc, TypeError) else None
        )
        if problem is not None:
            error = f"bad payload for task {call.name!r}: {problem}"
            return ChildReply(error=error, retryable=False, stdout=stdout.getvalue())
        stderr.write("".join(traceback.format_exception(exc)))
        return ChildReply(
            error=describe(exc),
            retryable=not isinstance(exc, PermanentError),
            stdout=stdout.getvalue(),
            stderr=stderr.getvalue(),
        )
    finally:
        unbind(token)
    try:
        encoded = dump_json(result)
    except NotJsonError as exc:
        reply = not_json(call.name, str(exc))
        return ChildReply(
            error=reply.error, retryable=False, stdout=stdout.getvalue(), stderr=stderr.getvalue()
        )
    return ChildReply(result_json=encoded, stdout=stdout.getvalue(), stderr=stderr.getvalue())


def _resolve(call: ChildCall) -> Callable[..., Any]:
    module = importlib.import_module(call.module)
    registered = default_registry.get(call.name)
    if registered is not None and registered.fn.__module__ == call.module:
        return registered.fn
    target: Any = module
    for part in call.qualname.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{call.module}.{call.qualname} is not callable")
    return target  # type: ignore[no-any-return]
