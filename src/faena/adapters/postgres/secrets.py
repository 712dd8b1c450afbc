"""The SecretVault on PostgreSQL, mixed into :class:`~faena.adapters.postgres.store.PostgresStore`.

A tenant's reads and writes run under row-level security (``faena_tenant``); a rotation walks
every tenant's rows as the owner. Rows hold ciphertext only.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from faena.domain.secrets import SealedSecret, SecretInfo
from faena.ports.secrets import PutSecretParams, ResealParams, StaleSecretsParams

_INFO = "tenant, name, version, key_id, created_at, updated_at"
PUT = f"""INSERT INTO secrets (tenant, name, ciphertext, nonce, key_id, version, created_at,
    updated_at) VALUES ($1, $2, $3, $4, $5, 1, $6, $6)
ON CONFLICT (tenant, name) DO UPDATE SET ciphertext = excluded.ciphertext,
    nonce = excluded.nonce, key_id = excluded.key_id, version = secrets.version + 1,
    updated_at = excluded.updated_at
RETURNING {_INFO}"""
GET = f"""SELECT {_INFO}, ciphertext, nonce FROM secrets
WHERE tenant = $1 AND name = ANY($2::text[])"""
LIST = f"SELECT {_INFO} FROM secrets WHERE tenant = $1 ORDER BY name"
DELETE = "DELETE FROM secrets WHERE tenant = $1 AND name = $2"
STALE = f"""SELECT {_INFO}, ciphertext, nonce FROM secrets
WHERE key_id <> $1 AND (tenant, name) > ($2, $3) ORDER BY tenant, name LIMIT $4"""
RESEAL = """UPDATE secrets s SET ciphertext = c.ciphertext, nonce = c.nonce, key_id = c.key_id
FROM unnest($1::text[], $2::text[], $3::int[], $4::bytea[], $5::bytea[], $6::text[])
    AS c(tenant, name, version, ciphertext, nonce, key_id)
WHERE s.tenant = c.tenant AND s.name = c.name AND s.version = c.version"""


def _info(r: Any) -> SecretInfo:
    return SecretInfo(
        tenant=r[0],
        name=r[1],
        version=int(r[2]),
        key_id=r[3],
        created_at=float(r[4]),
        updated_at=float(r[5]),
    )


def _sealed(r: Any) -> SealedSecret:
    return SealedSecret(_info(r), bytes(r[6]), bytes(r[7]))


class PostgresSecrets:
    """The :class:`~faena.ports.secrets.SecretVault` operations of the PostgreSQL store."""

    def _connection(self, doing: str) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # provided by PostgresStore

    def _tenant_connection(self, tenant: str, doing: str) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # provided by PostgresStore

    async def put_secret(self, params: PutSecretParams) -> SecretInfo:
        p = params
        async with self._tenant_connection(p.tenant, "storing a secret") as conn:
            row = await conn.fetchrow(PUT, p.tenant, p.name, p.ciphertext, p.nonce, p.key_id, p.now)
        return _info(row)

    async def get_secrets(self, tenant: str, names: Sequence[str]) -> list[SealedSecret]:
        async with self._tenant_connection(tenant, "reading secrets") as conn:
            rows = await conn.fetch(GET, tenant, list(names))
        return [_sealed(r) for r in rows]

    async def list_secrets(self, tenant: str) -> list[SecretInfo]:
        async with self._tenant_connection(tenant, "listing secrets") as conn:
            rows = await conn.fetch(LIST, tenant)
        return [_info(r) for r in rows]

    async def delete_secret(self, tenant: str, name: str) -> bool:
        async with self._tenant_connection(tenant, "deleting a secret") as conn:
            status: str = await conn.execute(DELETE, tenant, name)
        return status != "DELETE 0"

    async def stale_secrets(self, params: StaleSecretsParams) -> list[SealedSecret]:
        after = params.after or ("", "")
        async with self._connection("reading secrets to re-encrypt") as conn:
            rows = await conn.fetch(STALE, params.key_id, after[0], after[1], params.limit)
        return [_sealed(r) for r in rows]

    async def reseal_secrets(self, params: Sequence[ResealParams]) -> int:
        if not params:
            return 0
        cols: tuple[list[Any], ...] = ([], [], [], [], [], [])
        for c in params:
            for col, value in zip(
                cols, (c.tenant, c.name, c.version, c.ciphertext, c.nonce, c.key_id), strict=True
            ):
                col.append(value)
        async with self._connection("re-encrypting secrets") as conn:
            status: str = await conn.execute(RESEAL, *cols)
        return int(status.rsplit(" ", 1)[-1])
