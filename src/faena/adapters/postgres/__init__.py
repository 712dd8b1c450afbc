"""The PostgreSQL adapter: the Store port on asyncpg, for several servers on one database."""

from __future__ import annotations

from faena.adapters.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
