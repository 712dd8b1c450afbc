"""The error hierarchy of faena.

Every error a user can meet is a :class:`FaenaError` with a stable ``code``. Adapters translate
driver errors into these at their edge; the HTTP API maps each class to exactly one status code.
"""

from __future__ import annotations


class FaenaError(Exception):
    """Base of every error faena raises on purpose."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(FaenaError):
    """The input is malformed or out of range (HTTP 422)."""

    code = "invalid"


class NotFound(FaenaError):
    """The object does not exist, or not for this tenant (HTTP 404)."""

    code = "not_found"


class Conflict(FaenaError):
    """The object is not in a state that allows the operation (HTTP 409)."""

    code = "conflict"


class Unauthorized(FaenaError):
    """Missing, unknown, expired or revoked credentials (HTTP 401)."""

    code = "unauthorized"


class Forbidden(FaenaError):
    """The credentials lack a scope the operation needs (HTTP 403)."""

    code = "forbidden"


class PayloadTooLarge(FaenaError):
    """The request or payload exceeds the configured limit (HTTP 413)."""

    code = "payload_too_large"


class Unavailable(FaenaError):
    """A backing service (the store) cannot be reached right now (HTTP 503)."""

    code = "unavailable"


class SchemaError(FaenaError):
    """The database schema is newer than this code, or a migration failed."""

    code = "schema"


class RateLimited(FaenaError):
    """Too many requests for a key or a client address (HTTP 429 with ``Retry-After``)."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int, limit: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s  # whole seconds, at least 1
        self.limit = limit  # requests per minute of the bucket that refused
