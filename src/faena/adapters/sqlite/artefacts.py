"""The ArtefactStore on SQLite, mixed into :class:`~faena.adapters.sqlite.store.SqliteStore`.

Writes run on the store's writer thread; a cache lookup (the hot path of the document kinds)
runs on the event loop's own connection, as a job lookup does, since a WAL read never waits.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from faena.adapters.sqlite.connection import transaction
from faena.domain.artefacts import Artefact
from faena.domain.errors import ValidationError
from faena.ports.artefacts import (
    ArtefactPage,
    CacheKey,
    ListArtefactsParams,
    PurgeArtefactsParams,
)

A = TypeVar("A")
T = TypeVar("T")

_COLUMNS = "id, tenant, name, content_type, size, sha256, created_at, job_id, expires_at"
ADD = f"INSERT INTO artefacts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
GET = f"SELECT {_COLUMNS} FROM artefacts WHERE id = ? AND tenant = ?"
ADD_FOR_SOURCE = f"""INSERT INTO artefacts ({_COLUMNS}, source_key)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tenant, source_key) WHERE source_key IS NOT NULL DO NOTHING"""
FOR_SOURCE = f"SELECT {_COLUMNS} FROM artefacts WHERE tenant = ? AND source_key = ?"
LIST = f"""SELECT {_COLUMNS} FROM artefacts
WHERE tenant = ? AND id < coalesce(?, '~') AND (? IS NULL OR job_id = ?)
ORDER BY id DESC LIMIT ?"""
DELETE = f"DELETE FROM artefacts WHERE id = ? AND tenant = ? RETURNING {_COLUMNS}"
PURGE = f"""DELETE FROM artefacts WHERE id IN (
  SELECT id FROM artefacts WHERE expires_at <= ? UNION
  SELECT id FROM artefacts WHERE created_at < ? ORDER BY id LIMIT ?)
RETURNING {_COLUMNS}"""
CACHE_GET = (
    "SELECT result FROM document_cache WHERE tenant = ? AND kind = ? AND sha256 = ? AND options = ?"
)
CACHE_FOR_ARTEFACT = """SELECT a.sha256, c.result FROM artefacts AS a
LEFT JOIN document_cache AS c
  ON c.tenant = a.tenant AND c.kind = ? AND c.sha256 = a.sha256 AND c.options = ?
WHERE a.id = ? AND a.tenant = ?"""
CACHE_PUT = """INSERT OR REPLACE INTO document_cache (tenant, kind, sha256, options, result,
created_at) VALUES (?, ?, ?, ?, ?, ?)"""
CACHE_PURGE = """DELETE FROM document_cache WHERE rowid IN (
  SELECT rowid FROM document_cache WHERE created_at < ? LIMIT ?)"""


def _artefact(r: tuple[Any, ...]) -> Artefact:
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


def add_artefact(conn: sqlite3.Connection, a: Artefact) -> None:
    with transaction(conn):
        conn.execute(
            ADD,
            (a.id, a.tenant, a.name, a.content_type, a.size, a.sha256, a.created_at, a.job_id,
             a.expires_at),
        )  # fmt: skip


def add_artefact_for_source(conn: sqlite3.Connection, args: tuple[Artefact, str]) -> Artefact:
    a, source_key = args
    with transaction(conn):
        conn.execute(
            ADD_FOR_SOURCE,
            (a.id, a.tenant, a.name, a.content_type, a.size, a.sha256, a.created_at, a.job_id,
             a.expires_at, source_key),
        )  # fmt: skip
        row = conn.execute(FOR_SOURCE, (a.tenant, source_key)).fetchone()
    return _artefact(row)


def artefact_for_source(conn: sqlite3.Connection, args: tuple[str, str]) -> Artefact | None:
    row = conn.execute(FOR_SOURCE, args).fetchone()
    return None if row is None else _artefact(row)


def get_artefact(conn: sqlite3.Connection, args: tuple[str, str]) -> Artefact | None:
    tenant, artefact_id = args
    row = conn.execute(GET, (artefact_id, tenant)).fetchone()
    return None if row is None else _artefact(row)


def list_artefacts(conn: sqlite3.Connection, p: ListArtefactsParams) -> ArtefactPage:
    rows = conn.execute(LIST, (p.tenant, p.cursor, p.job_id, p.job_id, p.limit + 1)).fetchall()
    page = [_artefact(r) for r in rows[: p.limit]]
    return ArtefactPage(page, page[-1].id if len(rows) > p.limit and page else None)


def delete_artefact(conn: sqlite3.Connection, args: tuple[str, str]) -> Artefact | None:
    tenant, artefact_id = args
    with transaction(conn):
        row = conn.execute(DELETE, (artefact_id, tenant)).fetchone()
    return None if row is None else _artefact(row)


def purge_artefacts(conn: sqlite3.Connection, p: PurgeArtefactsParams) -> list[Artefact]:
    before = float("-inf") if p.created_before is None else p.created_before
    with transaction(conn):
        rows = conn.execute(PURGE, (p.now, before, p.limit)).fetchall()
    return sorted((_artefact(r) for r in rows), key=lambda a: a.id)


def get_cached(conn: sqlite3.Connection, key: CacheKey) -> str | None:
    row = conn.execute(CACHE_GET, (key.tenant, key.kind, key.sha256, key.options)).fetchone()
    return None if row is None else str(row[0])


def cached_for_artefact(
    conn: sqlite3.Connection, args: tuple[str, str, str, str]
) -> tuple[str, str | None] | None:
    tenant, artefact_id, kind, options = args
    row = conn.execute(CACHE_FOR_ARTEFACT, (kind, options, artefact_id, tenant)).fetchone()
    return None if row is None else (row[0], row[1])


def put_cached(conn: sqlite3.Connection, args: tuple[CacheKey, str, float]) -> None:
    key, encoded, now = args
    with transaction(conn):
        conn.execute(CACHE_PUT, (key.tenant, key.kind, key.sha256, key.options, encoded, now))


def purge_cached(conn: sqlite3.Connection, args: tuple[float, int]) -> int:
    with transaction(conn):
        return conn.execute(CACHE_PURGE, args).rowcount


class SqliteArtefacts:
    """The :class:`~faena.ports.artefacts.ArtefactStore` operations of the SQLite store."""

    _inline_conn: sqlite3.Connection | None

    async def _write(self, op: Callable[[sqlite3.Connection, A], T], arg: A) -> T:
        raise NotImplementedError  # provided by SqliteStore

    async def _read(self, op: Callable[[sqlite3.Connection, A], T], arg: A) -> T:
        raise NotImplementedError  # provided by SqliteStore

    async def _inline(self, op: Callable[[sqlite3.Connection, A], T], arg: A) -> T:
        """A read on the event loop's own connection (a WAL read never waits for the writer,
        and costs less than the hop to a thread); on the reader thread if that is busy."""
        conn = self._inline_conn
        if conn is not None:
            try:
                return op(conn, arg)
            except sqlite3.OperationalError:  # busy (WAL recovery): wait on the reader thread
                pass
        return await self._read(op, arg)

    async def add_artefact(self, artefact: Artefact) -> None:
        await self._write(add_artefact, artefact)

    async def add_artefact_for_source(self, artefact: Artefact, source_key: str) -> Artefact:
        return await self._write(add_artefact_for_source, (artefact, source_key))

    async def artefact_for_source(self, tenant: str, source_key: str) -> Artefact | None:
        return await self._read(artefact_for_source, (tenant, source_key))

    async def get_artefact(self, tenant: str, artefact_id: str) -> Artefact | None:
        return await self._read(get_artefact, (tenant, artefact_id))

    async def list_artefacts(self, params: ListArtefactsParams) -> ArtefactPage:
        return await self._read(list_artefacts, params)

    async def delete_artefact(self, tenant: str, artefact_id: str) -> Artefact | None:
        return await self._write(delete_artefact, (tenant, artefact_id))

    async def purge_artefacts(self, params: PurgeArtefactsParams) -> list[Artefact]:
        return await self._write(purge_artefacts, params)

    async def get_cached_result(self, key: CacheKey) -> Any | None:
        found = await self._inline(get_cached, key)
        return None if found is None else orjson.loads(found)

    async def cached_result_for_artefact(
        self, tenant: str, artefact_id: str, kind: str, options: str
    ) -> tuple[str, Any | None] | None:
        found = await self._inline(cached_for_artefact, (tenant, artefact_id, kind, options))
        if found is None:
            return None
        sha256, result = found
        return sha256, None if result is None else orjson.loads(result)

    async def put_cached_result(self, key: CacheKey, result: Any, now: float) -> None:
        try:
            encoded = orjson.dumps(result).decode()
        except TypeError as e:
            raise ValidationError(f"result is not JSON: {e}") from None
        await self._write(put_cached, (key, encoded, now))

    async def purge_cached_results(self, before: float, limit: int = 1000) -> int:
        return await self._write(purge_cached, (before, limit))
