"""The SQLite store: one file, WAL, a single writer thread and a reader thread."""

from faena.adapters.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
