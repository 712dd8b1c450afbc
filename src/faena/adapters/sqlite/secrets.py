"""The SecretVault on SQLite, mixed into :class:`~faena.adapters.sqlite.store.SqliteStore`.
Rows hold ciphertext only; writes run on the writer thread, reads on the reader thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from faena.adapters.sqlite.connection import transaction
from faena.domain.secrets import SealedSecret, SecretInfo
from faena.ports.secrets import PutSecretParams, ResealParams, StaleSecretsParams

A = TypeVar("A")
T = TypeVar("T")

_INFO = "tenant, name, version, key_id, created_at, updated_at"
PUT = f"""INSERT INTO secrets (tenant, name, ciphertext, nonce, key_id, version, created_at,
    updated_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?)
ON CONFLICT (tenant, name) DO UPDATE SET ciphertext = excluded.ciphertext,
    nonce = excluded.nonce, key_id = excluded.key_id, version = secrets.version + 1,
    updated_at = excluded.updated_at
RETURNING {_INFO}"""
GET = f"SELECT {_INFO}, ciphertext, nonce FROM secrets WHERE tenant = ? AND name = ?"
LIST = f"SELECT {_INFO} FROM secrets WHERE tenant = ? ORDER BY name"
DELETE = "DELETE FROM secrets WHERE tenant = ? AND name = ?"
STALE = f"""SELECT {_INFO}, ciphertext, nonce FROM secrets
WHERE key_id <> ? AND (tenant, name) > (?, ?) ORDER BY tenant, name LIMIT ?"""
RESEAL = """UPDATE secrets SET ciphertext = ?, nonce = ?, key_id = ?
WHERE tenant = ? AND name = ? AND version = ?"""


def _info(r: Sequence[Any]) -> SecretInfo:
    return SecretInfo(
        tenant=r[0],
        name=r[1],
        version=int(r[2]),
        key_id=r[3],
        created_at=float(r[4]),
        updated_at=float(r[5]),
    )


def _sealed(r: Sequence[Any]) -> SealedSecret:
    return SealedSecret(_info(r), bytes(r[6]), bytes(r[7]))


def put_secret(conn: sqlite3.Connection, p: PutSecretParams) -> SecretInfo:
    with transaction(conn):
        row = conn.execute(
            PUT, (p.tenant, p.name, p.ciphertext, p.nonce, p.key_id, p.now, p.now)
        ).fetchone()
    return _info(row)


def get_secrets(conn: sqlite3.Connection, args: tuple[str, Sequence[str]]) -> list[SealedSecret]:
    tenant, names = args
    rows = (conn.execute(GET, (tenant, name)).fetchone() for name in dict.fromkeys(names))
    return [_sealed(r) for r in rows if r is not None]


def list_secrets(conn: sqlite3.Connection, tenant: str) -> list[SecretInfo]:
    return [_info(r) for r in conn.execute(LIST, (tenant,)).fetchall()]


def delete_secret(conn: sqlite3.Connection, args: tuple[str, str]) -> bool:
    with transaction(conn):
        return conn.execute(DELETE, args).rowcount > 0


def stale_secrets(conn: sqlite3.Connection, p: StaleSecretsParams) -> list[SealedSecret]:
    after = p.after or ("", "")
    rows = conn.execute(STALE, (p.key_id, after[0], after[1], p.limit)).fetchall()
    return [_sealed(r) for r in rows]


def reseal_secrets(conn: sqlite3.Connection, changes: Sequence[ResealParams]) -> int:
    applied = 0
    with transaction(conn):
        for c in changes:
            applied += conn.execute(
                RESEAL, (c.ciphertext, c.nonce, c.key_id, c.tenant, c.name, c.version)
            ).rowcount
    return applied


class SqliteSecrets:
    """The :class:`~faena.ports.secrets.SecretVault` operations of the SQLite store."""

    async def _write(self, op: Callable[[sqlite3.Connection, A], T], arg: A) -> T:
        raise NotImplementedError  # provided by SqliteStore

    async def _read(self, op: Callable[[sqlite3.Connection, A], T], arg: A) -> T:
        raise NotImplementedError  # provided by SqliteStore

    async def put_secret(self, params: PutSecretParams) -> SecretInfo:
        return await self._write(put_secret, params)

    async def get_secrets(self, tenant: str, names: Sequence[str]) -> list[SealedSecret]:
        return await self._read(get_secrets, (tenant, list(names)))

    async def list_secrets(self, tenant: str) -> list[SecretInfo]:
        return await self._read(list_secrets, tenant)

    async def delete_secret(self, tenant: str, name: str) -> bool:
        return await self._write(delete_secret, (tenant, name))

    async def stale_secrets(self, params: StaleSecretsParams) -> list[SealedSecret]:
        return await self._read(stale_secrets, params)

    async def reseal_secrets(self, params: Sequence[ResealParams]) -> int:
        return await self._write(reseal_secrets, list(params))
