"""The running job as its task sees it: ``faena.worker.context.current_job()``."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from typing import Protocol

from faena.domain.logs import LogStream


class _Sink(Protocol):
    def log(self, stream: LogStream, data: str) -> None: ...


class JobContext:
    """Who is running (``job_id``, ``attempt``, ``tenant``, ``kind``) and a way to log.

    Valid in an ``async`` task, in a plain task run in a thread (the context is copied into the
    thread) and in a ``cpu=True`` task in the process pool (there, lines are sent back with the
    result, after the function returns).
    """

    __slots__ = ("_loop", "_loop_thread", "_sink", "attempt", "job_id", "kind", "tenant")

    def __init__(
        self,
        *,
        job_id: str,
        attempt: int,
        tenant: str,
        kind: str,
        sink: _Sink,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.tenant = tenant
        self.kind = kind
        self._sink = sink
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def log(self, text: str) -> None:
        """Send ``text`` to the job's log as a stdout chunk; a newline is added if it lacks one.

        Safe to call from the worker's event loop and from a task's thread.
        """
        if not text.endswith("\n"):
            text += "\n"
        if self._loop is None or threading.get_ident() == self._loop_thread:
            self._sink.log(LogStream.STDOUT, text)
            return
        # RuntimeError: the loop is closed, a timed-out thread outlived its worker.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._sink.log, LogStream.STDOUT, text)

    def progress(self, fraction: float, message: str = "") -> None:
        """Report how far the job is (``fraction`` from 0 to 1) and what it is doing: a
        ``job.progress`` event, and ``progress`` on the job while this attempt runs.

        Safe from the event loop and from a task's thread; a no-op in a ``cpu=True`` task.
        Reports are not throttled: call it per unit of real work, not in a tight loop.
        """
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise TypeError(f"progress takes a number between 0 and 1, not {fraction!r}")
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"progress takes a number between 0 and 1, not {fraction!r}")
        report = getattr(self._sink, "progress", None)
        if report is None:
            return
        if self._loop is None or threading.get_ident() == self._loop_thread:
            report(float(fraction), str(message))
            return
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(report, float(fraction), str(message))

    def __repr__(self) -> str:
        return f"JobContext(job_id={self.job_id!r}, attempt={self.attempt}, kind={self.kind!r})"


_current: contextvars.ContextVar[JobContext] = contextvars.ContextVar("faena_current_job")


def current_job() -> JobContext:
    """The job this code runs for. Raises :class:`RuntimeError` outside a faena task."""
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError("current_job() was called outside a faena task") from None


def bind(context: JobContext) -> contextvars.Token[JobContext]:
    """Make ``context`` the current job; undo with :func:`unbind`."""
    return _current.set(context)


def unbind(token: contextvars.Token[JobContext]) -> None:
    _current.reset(token)
