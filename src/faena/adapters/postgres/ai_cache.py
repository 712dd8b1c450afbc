"""The AiCacheStore on PostgreSQL, mixed into ``PostgresStore``. Vectors are ranked by the
service's in-process index (pgvector is not required; see docs/ai.md)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from faena.adapters import ai_cache_rows as rows
from faena.ports.ai_cache import (
    CacheEntry,
    GetCacheEntryParams,
    Nearest,
    NearestCacheParams,
    PurgeCacheParams,
    PutCacheEntryParams,
    ScanCacheVectorsParams,
)

SELECT = f"SELECT {rows.COLUMNS} FROM ai_cache"
LIVE = "(expires_at IS NULL OR expires_at > $4)"
DELETE = "DELETE FROM ai_cache WHERE tenant = $1 AND namespace = $2 AND key = $3"
INSERT = """INSERT INTO ai_cache (tenant, namespace, key, text, model, vector, value, created_at,
    expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq"""


class PostgresAiCache:
    """The :class:`~faena.ports.ai_cache.AiCacheStore` operations of the PostgreSQL store."""

    supports_vector_search = False

    if TYPE_CHECKING:

        def _connection(self, doing: str) -> AbstractAsyncContextManager[Any]: ...

    async def cache_put(self, params: PutCacheEntryParams) -> CacheEntry:
        p = params
        async with self._connection("storing a cache entry") as conn, conn.transaction():
            # Delete then insert, not an upsert: a replaced entry needs a new seq.
            await conn.execute(DELETE, p.tenant, p.namespace, p.key)
            seq = await conn.fetchval(
                INSERT,
                p.tenant,
                p.namespace,
                p.key,
                p.text,
                p.model,
                rows.pack(p.vector),
                p.value,
                p.now,
                p.expires_at,
            )
        return CacheEntry(
            int(seq),
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

    async def cache_get(self, params: GetCacheEntryParams) -> CacheEntry | None:
        p = params
        async with self._connection("reading a cache entry") as conn:
            row = await conn.fetchrow(
                f"{SELECT} WHERE tenant = $1 AND namespace = $2 AND key = $3 AND {LIVE}",
                p.tenant,
                p.namespace,
                p.key,
                p.now,
            )
        return None if row is None else rows.entry(row)

    async def cache_scan_vectors(self, params: ScanCacheVectorsParams) -> list[CacheEntry]:
        p = params
        async with self._connection("scanning cache vectors") as conn:
            found = await conn.fetch(
                f"{SELECT} WHERE tenant = $1 AND namespace = $2 AND model = $3 AND {LIVE}"
                " AND seq > $5 ORDER BY seq LIMIT $6",
                p.tenant,
                p.namespace,
                p.model,
                p.now,
                p.after_seq,
                p.limit,
            )
        return [rows.entry(r) for r in found]

    async def cache_nearest(self, params: NearestCacheParams) -> Nearest | None:
        raise NotImplementedError("vector search runs in process on PostgreSQL")

    async def cache_purge(self, params: PurgeCacheParams) -> int:
        p = params
        where: list[str] = ["TRUE"]
        args: list[object] = []
        if p.tenant is not None:
            args.append(p.tenant)
            where.append(f"tenant = ${len(args)}")
        if p.namespace is not None:
            args.append(p.namespace)
            where.append(f"namespace = ${len(args)}")
        if p.expired_only:
            args.append(p.now)
            where.append(f"expires_at IS NOT NULL AND expires_at <= ${len(args)}")
        async with self._connection("purging cache entries") as conn:
            status = await conn.execute(f"DELETE FROM ai_cache WHERE {' AND '.join(where)}", *args)
        return int(status.split()[-1])
