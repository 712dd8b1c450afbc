"""Reading JSON request bodies: media type, then orjson (which refuses NaN and infinity), then
one strict pydantic validation, each failure with its own status and a message naming the
problem."""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

import orjson
import pydantic
from fastapi import Request

from faena.api.errors import ApiError, describe_validation_errors
from faena.domain.errors import ValidationError

T = TypeVar("T")


def is_json_media_type(content_type: str | None) -> bool:
    if content_type is None:
        return True  # a bare body is read as JSON; a declared other type is refused
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_json(request: Request) -> Any:
    content_type = request.headers.get("content-type")
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
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        if _has_non_finite_numbers(raw):
            raise ValidationError(
                "body: numbers must be finite; NaN, Infinity and overflowing numbers such as "
                "1e400 are not allowed"
            ) from None
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {e}") from None


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
