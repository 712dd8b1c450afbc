"""Connections, transactions and error translation for the SQLite store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from faena.domain.errors import Conflict, FaenaError, SchemaError, Unavailable

SYNCHRONOUS_MODES = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})


def connect(path: Path, *, synchronous: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """A connection in autocommit mode: transactions are explicit (:func:`transaction`)."""
    if synchronous not in SYNCHRONOUS_MODES:  # it is interpolated into a PRAGMA below
        raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS_MODES)}")
    conn = sqlite3.connect(
        path, timeout=busy_timeout_ms / 1000, isolation_level=None, cached_statements=512
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA cache_size = -32000")  # KiB: 32 MB per connection
    except BaseException:
        conn.close()
        raise
    return conn


def use_wal(conn: sqlite3.Connection, path: Path) -> None:
    """Switch the file to write-ahead logging (persistent: it is a property of the file)."""
    (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
    if str(mode).lower() != "wal":
        raise Unavailable(f"cannot switch {path} to WAL (journal mode is {mode})")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that takes the lock up front, so it never fails half-way on BUSY."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def translate(error: sqlite3.Error) -> FaenaError:
    """The faena error for a driver error (raise it ``from`` the original)."""
    message = str(error)
    lowered = message.lower()
    if isinstance(error, sqlite3.IntegrityError):
        return Conflict(f"the store refused the change: {message}")
    if "no such table" in lowered or "no such column" in lowered:
        return SchemaError(f"the database schema is incomplete ({message}); run migrations")
    return Unavailable(f"the SQLite store is unavailable: {message}")
