"""Flag value types that explain what is wrong with a value in one line."""

from __future__ import annotations

import json
import sys
from typing import Any

import click


class JsonValue(click.ParamType[Any, Any]):
    """A JSON document, given inline, as ``@FILE``, or as ``-`` for standard input."""

    name = "JSON"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        text = value
        if value == "-":
            text = sys.stdin.read()
        elif value.startswith("@"):
            try:
                with open(value[1:], encoding="utf-8") as f:
                    text = f.read()
            except OSError as e:
                self.fail(f"cannot read {value[1:]!r}: {e.strerror}", param, ctx)
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            self.fail(
                f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno} (char {e.pos})",
                param,
                ctx,
            )


class Label(click.ParamType[tuple[str, str], Any]):
    """``key=value``."""

    name = "KEY=VALUE"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, str]:
        if isinstance(value, tuple):
            return (str(value[0]), str(value[1]))
        key, sep, val = str(value).partition("=")
        if not sep or not key:
            self.fail(f"{value!r} is not key=value", param, ctx)
        return key, val


class ResourcesValue(click.ParamType[dict[str, float], Any]):
    """``cpu=2,memory_mb=512``: what one attempt needs of a worker (the server checks ranges)."""

    name = "cpu=N,memory_mb=N"
    KEYS = ("cpu", "memory_mb")

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> dict[str, float]:
        if isinstance(value, dict):
            return value
        out: dict[str, float] = {}
        for part in str(value).split(","):
            key, sep, raw = part.strip().partition("=")
            if not sep or key not in self.KEYS:
                self.fail(f"{part.strip()!r}: expected cpu=N or memory_mb=N", param, ctx)
            try:
                number = float(raw)
            except ValueError:
                self.fail(f"{key}={raw!r}: not a number", param, ctx)
            out[key] = int(number) if key == "memory_mb" and number.is_integer() else number
        return out


JSON = JsonValue()
RESOURCES = ResourcesValue()
LABEL = Label()
SECONDS = click.FloatRange(min=0, min_open=False)
