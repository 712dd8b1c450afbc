"""What running a job produced, and how errors become one line of text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

MAX_ERROR_LENGTH = 1000

# What `orjson` accepts beyond plain JSON types: str-convertible dict keys, numpy arrays.
# Dataclasses, datetimes, UUIDs and enums are serialized natively.
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True, slots=True)
class Outcome:
    """The end of one attempt.

    ``result`` is JSON-serializable (set on success, and on some failures such as a non-zero exit
    code); ``error`` is one line such as ``"command exited with code 3"``; ``retryable`` is False
    for failures a retry cannot fix (a bad payload, an unknown kind, a non-JSON result).
    """

    succeeded: bool
    result: Any = None
    error: str | None = None
    retryable: bool = True


class PermanentError(Exception):
    """Raise it from a task to fail the job without further attempts."""


SUCCEEDED_EMPTY = Outcome(succeeded=True)


def failed(error: str, *, result: Any = None, retryable: bool = True) -> Outcome:
    return Outcome(succeeded=False, result=result, error=error, retryable=retryable)


def describe(exc: BaseException) -> str:
    """``"ValueError: bad input"``: the exception type and its message on one bounded line."""
    message = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    if len(text) > MAX_ERROR_LENGTH:
        text = text[: MAX_ERROR_LENGTH - 1] + "…"
    return text


def seconds(value: float) -> str:
    """``2.0`` → ``"2s"``, ``0.25`` → ``"0.25s"``."""
    return f"{value:g}s"


def timed_out(timeout_s: float, *, result: Any = None) -> Outcome:
    return failed(f"timed out after {seconds(timeout_s)}", result=result, retryable=True)


class NotJsonError(Exception):
    """A task returned a value that cannot be stored as JSON."""


def to_json_value(value: Any) -> Any:
    """``value`` as plain JSON types (dict, list, str, int, float, bool, None).

    Tuples become lists, dataclasses dicts, datetimes ISO strings; NaN becomes null. Raises
    :class:`NotJsonError` for anything JSON cannot hold (bytes, sets, arbitrary objects).
    """
    if value is None or value is True or value is False:
        return value
    return orjson.loads(dump_json(value))


def dump_json(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=_JSON_OPTIONS)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise NotJsonError(str(exc)) from None


def not_json(task_name: str, reason: str) -> Outcome:
    return failed(
        f"result of task {task_name!r} is not JSON-serializable: {reason}", retryable=False
    )
