"""One error shape for every failure: ``{"error": {"code", "message", "request_id"}}``.

Domain errors map to one status each; FastAPI's validation errors become readable 422s naming
the field; anything unexpected is logged with its stack trace and answered with a bare 500.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from faena.api.responses import JsonResponse
from faena.domain import errors as domain

STATUS_BY_ERROR: dict[type[domain.FaenaError], int] = {
    domain.ValidationError: 422,
    domain.NotFound: 404,
    domain.Conflict: 409,
    domain.Unauthorized: 401,
    domain.Forbidden: 403,
    domain.PayloadTooLarge: 413,
    domain.Unavailable: 503,
    domain.RateLimited: 429,
}
CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
}
REQUEST_ID_KEY = "faena.request_id"
MAX_LISTED_ERRORS = 5


class ApiError(Exception):
    """An HTTP-level refusal that has no domain meaning (malformed JSON, wrong media type)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def request_id_of(scope: Mapping[str, Any]) -> str:
    return str(scope.get(REQUEST_ID_KEY, "-"))


def error_response(
    status: int,
    code: str,
    message: str,
    request_id: str,
    headers: Mapping[str, str] | None = None,
) -> JsonResponse:
    body = {"error": {"code": code, "message": message, "request_id": request_id}}
    return JsonResponse(body, status_code=status, headers=headers)


def rate_limit_headers(error: domain.RateLimited) -> dict[str, str]:
    """``Retry-After`` (whole seconds) and the IETF draft ``RateLimit-*`` fields of a 429."""
    retry = str(error.retry_after_s)
    return {
        "Retry-After": retry,
        "RateLimit-Limit": str(error.limit),
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": retry,
    }


def status_of(error: domain.FaenaError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def describe_validation_errors(errors: Iterable[Mapping[str, Any]], prefix: str = "") -> str:
    """``body.priority: Input should be a valid integer; ...`` for the first few errors."""
    parts = []
    listed = list(errors)
    for err in listed[:MAX_LISTED_ERRORS]:
        loc = ".".join(str(p) for p in (*([prefix] if prefix else []), *err.get("loc", ())))
        msg = "unknown field" if err.get("type") == "extra_forbidden" else str(err.get("msg"))
        parts.append(f"{loc}: {msg}" if loc else msg)
    if len(listed) > MAX_LISTED_ERRORS:
        parts.append(f"and {len(listed) - MAX_LISTED_ERRORS} more")
    return "; ".join(parts)


async def _faena_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, domain.FaenaError)
    status = status_of(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, domain.RateLimited):
        headers = rate_limit_headers(exc)
    if status == 500:
        return await _unexpected(request, exc)
    return error_response(status, exc.code, exc.message, request_id_of(request.scope), headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, request_id_of(request.scope))


async def _request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(
            400, "invalid_json", "request body is not valid JSON", request_id_of(request.scope)
        )
    message = describe_validation_errors(errors)
    return error_response(422, "invalid", message, request_id_of(request.scope))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = CODE_BY_STATUS.get(exc.status_code, "error")
    if exc.status_code == 404:
        message = f"no route {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, code, message, request_id_of(request.scope), exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Reached only for a FaenaError without a status; other exceptions are caught by the
    # request middleware, which logs them with their stack trace.
    from faena.api.middleware import log

    request_id = request_id_of(request.scope)
    log.error("unmapped error", request_id=request_id, error=repr(exc))
    return error_response(500, "internal", f"internal error; request id {request_id}", request_id)


async def handled_error(request: Request, exc: Exception) -> Response | None:
    """The response the app's exception handlers give ``exc``, or None for an exception they
    do not handle (for code answering outside FastAPI's exception middleware)."""
    if isinstance(exc, domain.FaenaError):
        return await _faena_error(request, exc)
    if isinstance(exc, ApiError):
        return await _api_error(request, exc)
    return None


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(domain.FaenaError, _faena_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
