"""Reading JSON request bodies: media type, then orjson (which refuses NaN and infinity), then
the nesting and string-length limits, then one strict pydantic validation, each failure with
its own status and a message naming the problem."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import pydantic
from fastapi import Request

from faena.api.errors import ApiError, describe_validation_errors
from faena.domain.errors import PayloadTooLarge, ValidationError

T = TypeVar("T")
INPUT_LIMITS_KEY = "faena.input_limits"  # set in the scope by the request middleware
MAX_YAML_VALUES = 100_000  # a YAML document's values once aliases are expanded


@dataclass(frozen=True, slots=True)
class InputLimits:
    """How deep a body may nest (containers in containers) and how long any string in it (a
    value or a key, in characters) may be."""

    max_depth: int = 32
    max_string_length: int = 1024 * 1024


DEFAULT_LIMITS = InputLimits()


def input_limits(scope: Mapping[str, Any]) -> InputLimits:
    found = scope.get(INPUT_LIMITS_KEY)
    return found if isinstance(found, InputLimits) else DEFAULT_LIMITS


def check_limits(
    value: Any, limits: InputLimits, size: int | None = None, max_values: int | None = None
) -> None:
    """Refuse a parsed document nested deeper than ``limits.max_depth`` (422) or with a string
    longer than ``limits.max_string_length`` (413). ``size`` (the raw body's length) skips
    what that length already rules out, so small bodies cost next to nothing; ``max_values``
    bounds the values visited (YAML aliases can expand a small document enormously)."""
    if not isinstance(value, dict | list):
        if isinstance(value, str):
            _check_string(value, limits)
        return
    strings = size is None or size > limits.max_string_length
    if size is not None and size < 2 * (limits.max_depth + 1) and not strings:
        return  # each level takes two bytes: this body cannot nest too deep
    visited = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limits.max_depth:
            raise ValidationError(
                f"body: nested more than {limits.max_depth} levels deep "
                "(the limit is FAENA_MAX_JSON_DEPTH)"
            )
        children = node.values() if isinstance(node, dict) else node
        if strings and isinstance(node, dict):
            _check_strings(node, limits)
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
            elif strings and isinstance(child, str):
                _check_string(child, limits)
        if max_values is not None:
            visited += len(node)
            if visited > max_values:
                raise PayloadTooLarge(
                    f"body: the document expands to more than {max_values} values"
                )


def _check_strings(keys: dict[Any, Any], limits: InputLimits) -> None:
    for key in keys:
        if isinstance(key, str):
            _check_string(key, limits)


def _check_string(value: str, limits: InputLimits) -> None:
    if len(value) > limits.max_string_length:
        raise PayloadTooLarge(
            f"body: a string of {len(value)} characters is longer than the limit of "
            f"{limits.max_string_length} (FAENA_MAX_STRING_LENGTH)"
        )


NO_CONTENT_TYPE = "the request has no Content-Type; send the body with Content-Type: {wanted}"


def is_json_media_type(content_type: str | None) -> bool:
    """``application/json`` or ``application/*+json``; a body without a type is not JSON (it
    is refused with 415, never guessed)."""
    if content_type is None:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_json(request: Request) -> Any:
    content_type = request.headers.get("content-type")
    if content_type is None:
        raise ApiError(
            415, "unsupported_media_type", NO_CONTENT_TYPE.format(wanted="application/json")
        )
    if not is_json_media_type(content_type):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type {content_type!r} is not supported; send application/json",
        )
    raw = await request.body()
    if not raw.strip():
        raise ApiError(400, "invalid_json", "request body is empty; send a JSON document")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        if "depth limit" in str(e).lower():  # orjson's own limit (1024), far past ours
            limits = input_limits(request.scope)
            raise ValidationError(
                f"body: nested more than {limits.max_depth} levels deep "
                "(the limit is FAENA_MAX_JSON_DEPTH)"
            ) from None
        if _has_non_finite_numbers(raw):
            raise ValidationError(
                "body: numbers must be finite; NaN, Infinity and overflowing numbers such as "
                "1e400 are not allowed"
            ) from None
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {e}") from None
    check_limits(data, input_limits(request.scope), len(raw))
    return data


def _has_non_finite_numbers(raw: bytes) -> bool:
    """On the error path only: is this JSON but for NaN, Infinity or numbers that overflow
    (which orjson refuses as syntax, but which are really out-of-range values)?"""
    found = False

    def constant(_: str) -> float:
        nonlocal found
        found = True
        return 0.0

    def number(text: str) -> float:
        nonlocal found
        value = float(text)
        found = found or math.isinf(value)
        return value

    try:
        json.loads(raw, parse_constant=constant, parse_float=number)
    except (ValueError, RecursionError):
        return False
    return found


def validate(adapter: pydantic.TypeAdapter[T], data: Any) -> T:
    try:
        return adapter.validate_python(data)
    except pydantic.ValidationError as e:
        errors = e.errors(include_url=False, include_input=False, include_context=False)
        raise ValidationError(describe_validation_errors(errors, prefix="body")) from None


async def read_body(request: Request, adapter: pydantic.TypeAdapter[T]) -> T:
    return validate(adapter, await read_json(request))
