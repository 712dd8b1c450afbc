"""Log lines as ``configure_logging`` renders them: JSON for machines, readable in a terminal
(``FAENA_LOG_FORMAT=json|console|auto``). Each case runs in a fresh interpreter, since the
configuration is process-wide and binds stderr once."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

LOG_ONE_LINE = """
import sys
import structlog
from faena.bootstrap import configure_logging
from faena.config import Settings
configure_logging(Settings(log_format=sys.argv[1]))
structlog.contextvars.bind_contextvars(job_id="j-1", tenant="acme")
structlog.get_logger("faena.test").info("job started", attempt=2)
"""


def log_line(log_format: str) -> str:
    """What one log call writes to stderr when stderr is a pipe (not a terminal)."""
    done = subprocess.run(
        [sys.executable, "-c", LOG_ONE_LINE, log_format],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout == ""  # logs never go to stdout: it is the CLI's output
    [line] = done.stderr.splitlines()
    return line


def test_console_format_is_one_readable_line_with_the_bound_context() -> None:
    line = log_line("console")
    assert "job started" in line
    assert "[info" in line
    for pair in ("attempt=2", "job_id=j-1", "tenant=acme"):
        assert pair in line
    assert "\x1b[" not in line  # no colour codes when stderr is not a terminal
    assert not line.lstrip().startswith("{")


def test_json_format_is_one_object_per_line() -> None:
    record = json.loads(log_line("json"))
    assert record["event"] == "job started"
    assert record["level"] == "info"
    assert record["attempt"] == 2
    assert record["job_id"] == "j-1" and record["tenant"] == "acme"
    assert record["timestamp"].endswith("Z")


def test_auto_is_json_when_stderr_is_not_a_terminal() -> None:
    assert json.loads(log_line("auto"))["event"] == "job started"


def test_auto_is_the_coloured_console_format_on_a_terminal() -> None:
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-c", LOG_ONE_LINE, "auto"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=terminal,
            timeout=60,
            check=True,
        )
        assert done.returncode == 0
        os.close(terminal)
        terminal = -1
        written = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the terminal's other end is closed, all was read
                break
            if not chunk:
                break
            written += chunk
    finally:
        if terminal >= 0:
            os.close(terminal)
        os.close(controller)
    text = written.decode()
    assert "job started" in text
    assert "\x1b[" in text  # coloured
    assert "job_id" in text and "j-1" in text
    assert not text.lstrip().startswith("{")
