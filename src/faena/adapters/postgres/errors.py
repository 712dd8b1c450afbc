"""Driver and OS errors turned into faena's errors at the adapter edge.

Callers above the adapter only ever see :class:`~faena.domain.errors.FaenaError`; a connection
problem names the server (host:port) and what the adapter was doing when it happened.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import asyncpg

from faena.domain.errors import (
    Conflict,
    FaenaError,
    NotFound,
    SchemaError,
    Unavailable,
    ValidationError,
)

# Errors that mean "the server is not there, or not usable right now".
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InvalidCatalogNameError,  # the database does not exist
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidPasswordError,
    asyncpg.OperatorInterventionError,  # admin shutdown, crash shutdown
    asyncpg.InterfaceError,  # connection closed under us, pool closed
)


def server_address(dsn: str) -> str:
    """``host:port`` of a PostgreSQL URL, with libpq's defaults, for error messages."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or os.environ.get("PGHOST") or "localhost"
        port = parts.port or int(os.environ.get("PGPORT", "5432"))
    except ValueError:
        return "<unparsable database URL>"
    return f"{host}:{port}"


def _describe(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


@contextmanager
def translated(address: str, doing: str) -> Iterator[None]:
    """Run a block; re-raise asyncpg and OS errors as faena errors naming ``address``."""
    try:
        yield
    except FaenaError:
        raise
    except asyncpg.UniqueViolationError as error:
        raise Conflict(f"already exists: {error.detail or error}") from error
    except asyncpg.ForeignKeyViolationError as error:
        raise NotFound(f"a referenced object does not exist: {error.detail or error}") from error
    except asyncpg.UndefinedTableError as error:
        raise SchemaError(
            f"PostgreSQL at {address}: the faena schema is missing ({error}); run migrations"
        ) from error
    except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as error:
        raise ValidationError(f"rejected by the database: {_describe(error)}") from error
    except _UNAVAILABLE as error:
        raise Unavailable(
            f"PostgreSQL at {address} is unavailable while {doing}: {_describe(error)}"
        ) from error
    except asyncpg.TransactionRollbackError as error:  # deadlock, serialization failure
        raise Unavailable(
            f"PostgreSQL at {address} aborted a conflicting transaction while {doing}; retry"
        ) from error
    except asyncpg.QueryCanceledError as error:  # statement_timeout on the server
        raise Unavailable(f"PostgreSQL at {address} timed out while {doing}") from error
