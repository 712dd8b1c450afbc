"""The ``shell`` kind: a command in its own process group, its output streamed as it comes.

The command leads a new session (``start_new_session=True``), so its process group holds it and
every child it starts. The job ends when the command exits; processes it left behind in its group
are then terminated like on a timeout or a cancellation: SIGTERM to the group, a grace period,
SIGKILL to the group. A daemon meant to outlive its job must leave the group (``setsid``).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from faena.domain.logs import LogStream
from faena.ports.executor import ExecutionSink
from faena.worker.kinds.payloads import ShellSpec
from faena.worker.outcome import Outcome, describe, failed, seconds

TAIL_BYTES = 64 * 1024
DEFAULT_GRACE_S = 2.0
_POLL_S = 0.02  # how often a terminating group is checked for survivors
_KILL_WAIT_S = 1.0  # how long SIGKILL may take to empty the group
_STREAMS = {1: LogStream.STDOUT, 2: LogStream.STDERR}


class _Capture(asyncio.SubprocessProtocol):
    """Sends each read to the sink as one chunk and keeps the last bytes of each stream."""

    def __init__(self, sink: ExecutionSink, loop: asyncio.AbstractEventLoop) -> None:
        self._sink = sink
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._open = {1, 2}
        self._decoders = {fd: codecs.getincrementaldecoder("utf-8")("replace") for fd in (1, 2)}
        self._tails = {1: bytearray(), 2: bytearray()}

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        tail = self._tails[fd]
        tail += data
        if len(tail) > 2 * TAIL_BYTES:
            del tail[:-TAIL_BYTES]
        text = self._decoders[fd].decode(data)
        if text:
            self._sink.log(_STREAMS[fd], text)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd not in self._open:
            return
        self._open.discard(fd)
        rest = self._decoders[fd].decode(b"", final=True)
        if rest:
            self._sink.log(_STREAMS[fd], rest)
        if not self._open and not self.closed.done():
            self.closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def tail(self, fd: int) -> str:
        data = self._tails[fd][-TAIL_BYTES:]
        if len(self._tails[fd]) > TAIL_BYTES:
            # The cut may fall inside a character: drop its continuation bytes.
            skip = 0
            while skip < min(3, len(data)) and data[skip] & 0xC0 == 0x80:
                skip += 1
            data = data[skip:]
        return bytes(data).decode("utf-8", errors="replace")


async def run_shell(
    spec: ShellSpec,
    sink: ExecutionSink,
    *,
    timeout_s: float | None,
    grace_s: float = DEFAULT_GRACE_S,
) -> Outcome:
    """Run the command; see the module docstring for how its processes end."""
    loop = asyncio.get_running_loop()
    capture = _Capture(sink, loop)
    started = await _start(spec, capture, loop)
    if isinstance(started, Outcome):
        return started
    transport = started
    group = transport.get_pid()
    timed_out = False
    try:
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(capture.exited)
        except TimeoutError:
            timed_out = True
            sink.log(LogStream.SYSTEM, f"timed out after {seconds(timeout_s or 0)}\n")
        if timed_out or _group_alive(group):
            await _terminate_group(group, capture.exited, grace_s, sink)
        # Output still in the pipes arrives before they close; a process that escaped the group
        # (setsid) could hold them open forever, so the wait is bounded.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                await asyncio.shield(capture.closed)
    except BaseException:
        # Cancelled (job cancelled, worker shutting down): nothing of the command may survive.
        await _terminate_group(group, capture.exited, grace_s, sink)
        raise
    finally:
        transport.close()

    code = transport.get_returncode()
    result = {"exit_code": code, "stdout": capture.tail(1), "stderr": capture.tail(2)}
    if timed_out:
        return failed(f"timed out after {seconds(timeout_s or 0)}", result=result)
    if code is None or code == 0:
        return Outcome(succeeded=True, result=result)
    if code < 0:
        return failed(f"command was killed by {_signal_name(-code)}", result=result)
    return failed(f"command exited with code {code}", result=result)


async def _start(
    spec: ShellSpec, capture: _Capture, loop: asyncio.AbstractEventLoop
) -> asyncio.SubprocessTransport | Outcome:
    if spec.cwd is not None and not os.path.isdir(spec.cwd):  # noqa: ASYNC240 - a stat, once
        return failed(f"cwd {spec.cwd!r} is not a directory on this worker", retryable=False)
    options: dict[str, Any] = {
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
        "cwd": spec.cwd,
        "env": {**os.environ, **spec.env} if spec.env else None,
        "start_new_session": True,
    }
    try:
        if isinstance(spec.command, str):
            transport, _ = await loop.subprocess_shell(lambda: capture, spec.command, **options)
        else:
            transport, _ = await loop.subprocess_exec(lambda: capture, *spec.command, **options)
    except FileNotFoundError:
        return failed(f"command not found: {_program(spec)}", retryable=False)
    except PermissionError:
        return failed(f"permission denied: {_program(spec)}", retryable=False)
    except OSError as exc:
        return failed(f"cannot start {_program(spec)}: {describe(exc)}")
    return transport


async def _terminate_group(
    group: int, exited: asyncio.Future[None], grace_s: float, sink: ExecutionSink
) -> None:
    """SIGTERM to the group, up to ``grace_s`` for it to go, then SIGKILL to what remains."""
    if not _signal_group(group, signal.SIGTERM):
        return
    sink.log(LogStream.SYSTEM, f"sent SIGTERM to process group {group}\n")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_s
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                await asyncio.shield(exited)
        # No event tells when the last process of a group is gone: poll during the grace.
        while _group_alive(group) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(_POLL_S)
    finally:
        # Also reached when cancelled during the grace period: SIGKILL is never skipped.
        if _group_alive(group) and _signal_group(group, signal.SIGKILL):
            sink.log(LogStream.SYSTEM, f"sent SIGKILL to process group {group}\n")
            # SIGKILL is delivered asynchronously: wait briefly until the group is gone, so that
            # when the job is reported over, none of its processes still runs.
            deadline = loop.time() + _KILL_WAIT_S
            while _group_alive(group) and loop.time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(_POLL_S / 4)


def _signal_group(group: int, signum: signal.Signals) -> bool:
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        return False
    except PermissionError:  # the group id was reused by someone else's process
        return False
    return True


def _group_alive(group: int) -> bool:
    """True while a process of the group runs. Zombies do not count: an orphan that exited may
    stay a zombie for good when PID 1 does not reap (some containers)."""
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(group) and fields[0] not in ("Z", "X"):
            return True
    return False


def _program(spec: ShellSpec) -> str:
    return "/bin/sh" if isinstance(spec.command, str) else spec.command[0]


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
