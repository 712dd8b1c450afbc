"""The payloads of the built-in kinds, checked field by field.

Each ``parse_*`` function returns a typed spec or raises :class:`ValidationError` with a message
that says which field is wrong and what it should be. The API calls them at submit (422); the
executor calls them again before running, so a payload that reached a worker another way is
refused there too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from faena.domain.errors import ValidationError

MAX_SLEEP_S = 86_400.0
MAX_HTTP_TIMEOUT_S = 3_600.0
DEFAULT_HTTP_TIMEOUT_S = 30.0
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class ShellSpec:
    command: str | tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None


@dataclass(frozen=True, slots=True)
class HttpSpec:
    url: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    has_json: bool = False
    body: str | None = None
    timeout_s: float = DEFAULT_HTTP_TIMEOUT_S
    follow_redirects: bool = True


def parse_sleep(payload: Any) -> float:
    """``{"seconds": x}`` with 0 ≤ x ≤ 86400."""
    fields = _object("sleep", payload, allowed=("seconds",), required=("seconds",))
    return _number("sleep", "seconds", fields["seconds"], low=0.0, high=MAX_SLEEP_S)


def parse_shell(payload: Any) -> ShellSpec:
    """``{"command": str | [str, ...], "env": {str: str}, "cwd": str}``."""
    fields = _object("shell", payload, allowed=("command", "env", "cwd"), required=("command",))
    command = fields["command"]
    parsed: str | tuple[str, ...]
    if isinstance(command, str):
        if not command.strip():
            raise ValidationError("shell payload: 'command' must not be empty")
        if "\0" in command:
            raise ValidationError("shell payload: 'command' must not contain NUL characters")
        parsed = command
    elif isinstance(command, list):
        if not command:
            raise ValidationError("shell payload: 'command' must not be an empty list")
        if not all(isinstance(arg, str) and "\0" not in arg for arg in command):
            raise ValidationError(
                "shell payload: 'command' as a list must hold only strings without NUL"
            )
        if not command[0]:
            raise ValidationError("shell payload: 'command' must start with a program name")
        parsed = tuple(command)
    else:
        raise ValidationError(
            "shell payload: 'command' must be a string (run by /bin/sh -c) or a list of strings"
        )
    env = _string_map("shell", "env", fields.get("env"))
    for name in env:
        if "=" in name or "\0" in name or "\0" in env[name]:
            raise ValidationError(
                f"shell payload: 'env' name {name!r} must not contain '=' and neither name nor "
                "value may contain NUL"
            )
    cwd = fields.get("cwd")
    if cwd is not None and (not isinstance(cwd, str) or not cwd or "\0" in cwd):
        raise ValidationError("shell payload: 'cwd' must be a non-empty path string")
    return ShellSpec(command=parsed, env=env, cwd=cwd)


def parse_http(payload: Any) -> HttpSpec:
    """``{"method", "url", "headers", "json" | "body", "timeout_s", "follow_redirects"}``."""
    fields = _object(
        "http",
        payload,
        allowed=("method", "url", "headers", "json", "body", "timeout_s", "follow_redirects"),
        required=("url",),
    )
    url = fields["url"]
    if not isinstance(url, str):
        raise ValidationError("http payload: 'url' must be a string")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValidationError(f"http payload: 'url' is malformed: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("http payload: 'url' must be an absolute http:// or https:// URL")
    method = fields.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
        raise ValidationError(
            f"http payload: 'method' must be one of {', '.join(sorted(HTTP_METHODS))}"
        )
    if "json" in fields and "body" in fields:
        raise ValidationError("http payload: give 'json' or 'body', not both")
    body = fields.get("body")
    if body is not None and not isinstance(body, str):
        raise ValidationError("http payload: 'body' must be a string (use 'json' for objects)")
    timeout_s = DEFAULT_HTTP_TIMEOUT_S
    if "timeout_s" in fields:
        timeout_s = _number(
            "http", "timeout_s", fields["timeout_s"], low=0.0, high=MAX_HTTP_TIMEOUT_S
        )
        if timeout_s == 0:
            raise ValidationError("http payload: 'timeout_s' must be greater than 0")
    follow = fields.get("follow_redirects", True)
    if not isinstance(follow, bool):
        raise ValidationError("http payload: 'follow_redirects' must be true or false")
    return HttpSpec(
        url=url,
        method=method.upper(),
        headers=_string_map("http", "headers", fields.get("headers")),
        json=fields.get("json"),
        has_json="json" in fields,
        body=body,
        timeout_s=timeout_s,
        follow_redirects=follow,
    )


def _object(
    kind: str, payload: Any, *, allowed: tuple[str, ...], required: tuple[str, ...]
) -> Mapping[str, Any]:
    if not isinstance(payload, dict):
        raise ValidationError(
            f"{kind} payload must be an object with {', '.join(repr(f) for f in required)}"
        )
    unknown = sorted(str(k) for k in payload if k not in allowed)
    if unknown:
        raise ValidationError(
            f"{kind} payload: unknown field {', '.join(repr(k) for k in unknown)}; "
            f"expected {', '.join(allowed)}"
        )
    for name in required:
        if name not in payload:
            raise ValidationError(f"{kind} payload: {name!r} is required")
    return payload


def _number(kind: str, name: str, value: Any, *, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"{kind} payload: {name!r} must be a number")
    if not low <= value <= high:
        raise ValidationError(f"{kind} payload: {name!r} must be between {low:g} and {high:g}")
    return float(value)


def _string_map(kind: str, name: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()
    ):
        raise ValidationError(
            f"{kind} payload: {name!r} must be an object mapping non-empty names to strings"
        )
    return dict(value)
