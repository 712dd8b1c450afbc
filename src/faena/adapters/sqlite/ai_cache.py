"""The AiCacheStore on SQLite, mixed into ``SqliteStore``: writes on the writer thread, scans
on the reader thread (WAL: never blocked by the writer)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import orjson

from faena.adapters import ai_cache_rows as rows
from faena.adapters.sqlite.connection import transaction
from faena.ports.ai_cache import (
    CacheEntry,
    GetCacheEntryParams,
    Nearest,
    NearestCacheParams,
    PurgeCacheParams,
    PutCacheEntryParams,
    ScanCacheVectorsParams,
)

A = TypeVar("A")
T = TypeVar("T")

SELECT = f"SELECT {rows.COLUMNS} FROM ai_cache"
LIVE = "(expires_at IS NULL OR expires_at > ?)"


def _put(conn: sqlite3.Connection, p: PutCacheEntryParams) -> CacheEntry:
    with transaction(conn):
        # Delete then insert, not an upsert: a replaced entry needs a new seq.
        conn.execute(
            "DELETE FROM ai_cache WHERE tenant = ? AND namespace = ? AND key = ?",
            (p.tenant, p.namespace, p.key),
        )
        cur = conn.execute(
            "INSERT INTO ai_cache (tenant, namespace, key, text, model, vector, value,"
            " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                p.tenant,
                p.namespace,
                p.key,
                p.text,
                p.model,
                rows.pack(p.vector),
                orjson.dumps(p.value).decode(),
                p.now,
                p.expires_at,
            ),
        )
        seq = cur.lastrowid
    return CacheEntry(
        int(seq or 0),
        p.tenant,
        p.namespace,
        p.key,
        p.text,
        p.vector,
        p.value,
        p.now,
        p.expires_at,
        p.model,
    )


def _get(conn: sqlite3.Connection, p: GetCacheEntryParams) -> CacheEntry | None:
    row = conn.execute(
        f"{SELECT} WHERE tenant = ? AND namespace = ? AND key = ? AND {LIVE}",
        (p.tenant, p.namespace, p.key, p.now),
    ).fetchone()
    return None if row is None else rows.entry(row)


def _scan(conn: sqlite3.Connection, p: ScanCacheVectorsParams) -> list[CacheEntry]:
    found = conn.execute(
        f"{SELECT} WHERE tenant = ? AND namespace = ? AND model = ? AND seq > ? AND {LIVE}"
        " ORDER BY seq LIMIT ?",
        (p.tenant, p.namespace, p.model, p.after_seq, p.now, p.limit),
    ).fetchall()
    return [rows.entry(r) for r in found]


def _purge(conn: sqlite3.Connection, p: PurgeCacheParams) -> int:
    where: list[str] = ["1 = 1"]
    args: list[object] = []
    if p.tenant is not None:
        where.append("tenant = ?")
        args.append(p.tenant)
    if p.namespace is not None:
        where.append("namespace = ?")
        args.append(p.namespace)
    if p.expired_only:
        where.append("expires_at IS NOT NULL AND expires_at <= ?")
        args.append(p.now)
    with transaction(conn):
        return conn.execute(f"DELETE FROM ai_cache WHERE {' AND '.join(where)}", args).rowcount


class SqliteAiCache:
    """The :class:`~faena.ports.ai_cache.AiCacheStore` operations of the SQLite store."""

    supports_vector_search = False

    if TYPE_CHECKING:

        async def _write(self, op: Callable[[sqlite3.Connection, A], T], arg: A) -> T: ...

        async def _read(self, op: Callable[[sqlite3.Connection, A], T], arg: A) -> T: ...

    async def cache_put(self, params: PutCacheEntryParams) -> CacheEntry:
        return await self._write(_put, params)

    async def cache_get(self, params: GetCacheEntryParams) -> CacheEntry | None:
        return await self._read(_get, params)

    async def cache_scan_vectors(self, params: ScanCacheVectorsParams) -> list[CacheEntry]:
        return await self._read(_scan, params)

    async def cache_nearest(self, params: NearestCacheParams) -> Nearest | None:
        raise NotImplementedError("SQLite has no vector search")

    async def cache_purge(self, params: PurgeCacheParams) -> int:
        return await self._write(_purge, params)
