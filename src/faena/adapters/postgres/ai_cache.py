"""The AiCacheStore on PostgreSQL, mixed into ``PostgresStore``.

Vectors are ranked by pgvector when the extension is there: at open, ``prepare_vectors`` runs
``CREATE EXTENSION IF NOT EXISTS vector`` (which succeeds when the extension is installed on
the server and the role may create it, or it exists already), adds an ``embedding vector``
column and an HNSW index (inner product) for 384-dimension vectors, and the store then says
``supports_vector_search``: ``cache_nearest`` asks the database for the nearest live entry.
Otherwise (no pgvector on the server, no privilege) nothing changes and the service ranks
vectors with its in-process index (docs/ai.md#semantic-cache). Entries stored before pgvector
appeared have no embedding: they are found by exact match only until they expire.

The pgvector path is not tested on faena's test machine (its Debian has no pgvector package);
the fallback is: a test opens a store on a server without the extension.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import asyncpg
import structlog

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
HAS_EMBEDDING = """SELECT EXISTS (SELECT 1 FROM pg_attribute
    WHERE attrelid = 'ai_cache'::regclass AND attname = 'embedding' AND NOT attisdropped)"""
INDEXED_DIMENSION = 384  # all-MiniLM-L6-v2; vectors of other sizes are ranked without index
log = structlog.get_logger("faena.postgres")


def _pgvector_sql(schema: str) -> dict[str, str]:
    """The statements of the pgvector path, with the extension's schema spelled out (it may
    not be on the connection's ``search_path``)."""
    vec = f'"{schema}".vector'
    ip = f'OPERATOR("{schema}".<#>)'
    fixed = f"{vec}({INDEXED_DIMENSION})"
    return {
        "column": f"ALTER TABLE ai_cache ADD COLUMN IF NOT EXISTS embedding {vec}",
        "index": f"""CREATE INDEX IF NOT EXISTS ai_cache_embedding ON ai_cache
            USING hnsw ((embedding::{fixed}) "{schema}".vector_ip_ops)
            WHERE "{schema}".vector_dims(embedding) = {INDEXED_DIMENSION}""",
        "insert": """INSERT INTO ai_cache (tenant, namespace, key, text, model, vector, value,
            created_at, expires_at, embedding)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::"""
        + vec
        + """) RETURNING seq""",
        # The indexed expression for 384 dimensions, a plain (exact) ordering otherwise.
        "nearest_indexed": f"""SELECT {rows.COLUMNS}, -(embedding::{fixed} {ip} $5::{fixed})
            FROM ai_cache WHERE tenant = $1 AND namespace = $2 AND model = $3 AND {LIVE}
              AND "{schema}".vector_dims(embedding) = {INDEXED_DIMENSION}
            ORDER BY embedding::{fixed} {ip} $5::{fixed} LIMIT 1""",
        "nearest": f"""SELECT {rows.COLUMNS}, -(embedding {ip} $5::{vec})
            FROM ai_cache WHERE tenant = $1 AND namespace = $2 AND model = $3 AND {LIVE}
              AND embedding IS NOT NULL
            ORDER BY embedding {ip} $5::{vec} LIMIT 1""",
    }


def _literal(vector: Any) -> str:
    return "[" + ",".join(f"{float(x):.9g}" for x in vector) + "]"


class PostgresAiCache:
    """The :class:`~faena.ports.ai_cache.AiCacheStore` operations of the PostgreSQL store."""

    if TYPE_CHECKING:

        def _connection(self, doing: str) -> AbstractAsyncContextManager[Any]: ...

    @property
    def supports_vector_search(self) -> bool:
        """pgvector was found (or created) when the store opened."""
        return self.__dict__.get("_pgvector_sql") is not None

    async def prepare_vectors(self, conn: Any) -> bool:
        """Use pgvector if the extension exists or can be created; True if it is used."""
        self.__dict__["_pgvector_sql"] = None
        try:
            async with conn.transaction():
                await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                schema = await conn.fetchval(
                    "SELECT extnamespace::regnamespace::text FROM pg_extension"
                    " WHERE extname = 'vector'"
                )
                sql = _pgvector_sql(str(schema).strip('"'))
                # Checked first: ALTER and CREATE INDEX lock the table even when they no-op.
                if not await conn.fetchval(HAS_EMBEDDING):
                    await conn.execute(sql["column"])
                if await conn.fetchval("SELECT to_regclass('ai_cache_embedding')") is None:
                    await conn.execute(sql["index"])
        except asyncpg.PostgresError as e:  # not installed, not allowed: the in-process index
            log.info("pgvector not available: ranking cache vectors in process", reason=str(e))
            return False
        self.__dict__["_pgvector_sql"] = sql
        return True

    async def cache_put(self, params: PutCacheEntryParams) -> CacheEntry:
        p = params
        sql = self.__dict__.get("_pgvector_sql")
        args: list[Any] = [
            p.tenant,
            p.namespace,
            p.key,
            p.text,
            p.model,
            rows.pack(p.vector),
            p.value,
            p.now,
            p.expires_at,
        ]
        if sql is not None:
            args.append(_literal(p.vector) if p.vector else None)
        async with self._connection("storing a cache entry") as conn, conn.transaction():
            # Delete then insert, not an upsert: a replaced entry needs a new seq.
            await conn.execute(DELETE, p.tenant, p.namespace, p.key)
            seq = await conn.fetchval(INSERT if sql is None else sql["insert"], *args)
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
        """The nearest live entry by pgvector (only called when ``supports_vector_search``)."""
        sql = self.__dict__.get("_pgvector_sql")
        if sql is None:
            raise NotImplementedError("pgvector is not available: search in process")
        p = params
        query = sql["nearest_indexed" if len(p.vector) == INDEXED_DIMENSION else "nearest"]
        async with self._connection("searching cache vectors") as conn:
            row = await conn.fetchrow(
                query, p.tenant, p.namespace, p.model, p.now, _literal(p.vector)
            )
        if row is None:
            return None
        return Nearest(rows.entry(row), float(row[10]))

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
