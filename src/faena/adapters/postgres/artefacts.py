"""The ArtefactStore on PostgreSQL, mixed into :class:`PostgresStore`.

Every operation of one tenant (store, read, list, delete an artefact; the document cache of a
job's kind) runs under row-level security (``_tenant_connection``); the purges of retention
run as the owner, across tenants. Purges take their rows with ``FOR UPDATE SKIP LOCKED``, so
several servers running retention at once each delete a different batch (and each deletes the
bytes of its own batch only).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import orjson

from faena.domain.artefacts import Artefact
from faena.domain.errors import ValidationError
from faena.ports.artefacts import (
    ArtefactPage,
    CacheKey,
    ListArtefactsParams,
    PurgeArtefactsParams,
)

_COLUMNS = "id, tenant, name, content_type, size, sha256, created_at, job_id, expires_at"
ADD = f"INSERT INTO artefacts ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
GET = f"SELECT {_COLUMNS} FROM artefacts WHERE id = $1 AND tenant = $2"
FOR_SOURCE = f"SELECT {_COLUMNS} FROM artefacts WHERE tenant = $1 AND source_key = $2"
# The row kept for the source: ours when inserted, else the one there already (two servers
# storing the same attachment at once: the unique index makes one of them win).
ADD_FOR_SOURCE = f"""WITH ins AS (
  INSERT INTO artefacts ({_COLUMNS}, source_key)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
  ON CONFLICT (tenant, source_key) WHERE source_key IS NOT NULL DO NOTHING
  RETURNING {_COLUMNS})
SELECT * FROM ins UNION ALL
SELECT {_COLUMNS} FROM artefacts WHERE tenant = $2 AND source_key = $10
  AND NOT EXISTS (SELECT 1 FROM ins)"""
LIST = f"""SELECT {_COLUMNS} FROM artefacts
WHERE tenant = $1 AND ($2::text IS NULL OR id < $2) AND ($3::text IS NULL OR job_id = $3)
ORDER BY id DESC LIMIT $4"""
DELETE = f"DELETE FROM artefacts WHERE id = $1 AND tenant = $2 RETURNING {_COLUMNS}"
PURGE = f"""DELETE FROM artefacts WHERE id IN (
  SELECT id FROM artefacts WHERE expires_at <= $1 OR created_at < $2
  ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
RETURNING {_COLUMNS}"""
CACHE_GET = """SELECT result FROM document_cache
WHERE tenant = $1 AND kind = $2 AND sha256 = $3 AND options = $4"""
CACHE_FOR_ARTEFACT = """SELECT a.sha256, c.result FROM artefacts AS a
LEFT JOIN document_cache AS c
  ON c.tenant = a.tenant AND c.kind = $3 AND c.sha256 = a.sha256 AND c.options = $4
WHERE a.id = $1 AND a.tenant = $2"""
CACHE_PUT = """INSERT INTO document_cache (tenant, kind, sha256, options, result, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (tenant, kind, sha256, options)
DO UPDATE SET result = excluded.result, created_at = excluded.created_at"""
CACHE_PURGE = """DELETE FROM document_cache WHERE ctid IN (
  SELECT ctid FROM document_cache WHERE created_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"""


def _artefact(r: Any) -> Artefact:
    return Artefact(
        id=r[0],
        tenant=r[1],
        name=r[2],
        content_type=r[3],
        size=int(r[4]),
        sha256=r[5],
        created_at=float(r[6]),
        job_id=r[7],
        expires_at=None if r[8] is None else float(r[8]),
    )


class PostgresArtefacts:
    """The :class:`~faena.ports.artefacts.ArtefactStore` operations of the PostgreSQL store."""

    def _connection(self, doing: str) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # provided by PostgresStore

    def _tenant_connection(self, tenant: str, doing: str) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # provided by PostgresStore (row-level security)

    async def add_artefact(self, artefact: Artefact) -> None:
        a = artefact
        async with self._tenant_connection(a.tenant, "storing an artefact") as conn:
            await conn.execute(
                ADD, a.id, a.tenant, a.name, a.content_type, a.size, a.sha256, a.created_at,
                a.job_id, a.expires_at,
            )  # fmt: skip

    async def add_artefact_for_source(self, artefact: Artefact, source_key: str) -> Artefact:
        a = artefact
        async with self._tenant_connection(a.tenant, "storing an artefact") as conn:
            row = await conn.fetchrow(
                ADD_FOR_SOURCE, a.id, a.tenant, a.name, a.content_type, a.size, a.sha256,
                a.created_at, a.job_id, a.expires_at, source_key,
            )  # fmt: skip
            if row is None:  # the other insert had not committed when ours looked: read again
                row = await conn.fetchrow(FOR_SOURCE, a.tenant, source_key)
        return _artefact(row)

    async def artefact_for_source(self, tenant: str, source_key: str) -> Artefact | None:
        async with self._tenant_connection(tenant, "reading an artefact") as conn:
            row = await conn.fetchrow(FOR_SOURCE, tenant, source_key)
        return None if row is None else _artefact(row)

    async def get_artefact(self, tenant: str, artefact_id: str) -> Artefact | None:
        async with self._tenant_connection(tenant, "reading an artefact") as conn:
            row = await conn.fetchrow(GET, artefact_id, tenant)
        return None if row is None else _artefact(row)

    async def list_artefacts(self, params: ListArtefactsParams) -> ArtefactPage:
        p = params
        async with self._tenant_connection(p.tenant, "listing artefacts") as conn:
            rows = await conn.fetch(LIST, p.tenant, p.cursor, p.job_id, p.limit + 1)
        page = [_artefact(r) for r in rows[: p.limit]]
        return ArtefactPage(page, page[-1].id if len(rows) > p.limit and page else None)

    async def delete_artefact(self, tenant: str, artefact_id: str) -> Artefact | None:
        async with self._tenant_connection(tenant, "deleting an artefact") as conn:
            row = await conn.fetchrow(DELETE, artefact_id, tenant)
        return None if row is None else _artefact(row)

    async def purge_artefacts(self, params: PurgeArtefactsParams) -> list[Artefact]:
        before = float("-inf") if params.created_before is None else params.created_before
        async with self._connection("purging artefacts") as conn:
            rows = await conn.fetch(PURGE, params.now, before, params.limit)
        return sorted((_artefact(r) for r in rows), key=lambda a: a.id)

    async def get_cached_result(self, key: CacheKey) -> Any | None:
        async with self._tenant_connection(key.tenant, "reading the document cache") as conn:
            found = await conn.fetchval(CACHE_GET, key.tenant, key.kind, key.sha256, key.options)
        return None if found is None else orjson.loads(found)

    async def cached_result_for_artefact(
        self, tenant: str, artefact_id: str, kind: str, options: str
    ) -> tuple[str, Any | None] | None:
        async with self._tenant_connection(tenant, "reading the document cache") as conn:
            row = await conn.fetchrow(CACHE_FOR_ARTEFACT, artefact_id, tenant, kind, options)
        if row is None:
            return None
        return row[0], None if row[1] is None else orjson.loads(row[1])

    async def put_cached_result(self, key: CacheKey, result: Any, now: float) -> None:
        try:
            encoded = orjson.dumps(result).decode()
        except TypeError as e:
            raise ValidationError(f"result is not JSON: {e}") from None
        async with self._tenant_connection(key.tenant, "writing the document cache") as conn:
            await conn.execute(
                CACHE_PUT, key.tenant, key.kind, key.sha256, key.options, encoded, now
            )

    async def purge_cached_results(self, before: float, limit: int = 1000) -> int:
        async with self._connection("purging the document cache") as conn:
            status: str = await conn.execute(CACHE_PURGE, before, limit)
        return int(status.rsplit(" ", 1)[-1])
