"""The SecretVault in memory, mixed into :class:`~faena.adapters.memory.store.MemoryStore`.
It keeps what the SQL stores keep: ciphertext, never a value."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from faena.domain.secrets import SealedSecret, SecretInfo
from faena.ports.secrets import PutSecretParams, ResealParams, StaleSecretsParams


class MemorySecrets:
    """The :class:`~faena.ports.secrets.SecretVault` operations of the in-memory store."""

    def _secret_rows(self) -> dict[tuple[str, str], SealedSecret]:
        rows = self.__dict__.get("_secret_registry")
        if rows is None:
            rows = self.__dict__["_secret_registry"] = {}
        assert isinstance(rows, dict)
        return rows

    async def put_secret(self, params: PutSecretParams) -> SecretInfo:
        p = params
        rows = self._secret_rows()
        old = rows.get((p.tenant, p.name))
        info = SecretInfo(
            tenant=p.tenant,
            name=p.name,
            version=1 if old is None else old.info.version + 1,
            key_id=p.key_id,
            created_at=p.now if old is None else old.info.created_at,
            updated_at=p.now,
        )
        rows[(p.tenant, p.name)] = SealedSecret(info, p.ciphertext, p.nonce)
        return info

    async def get_secrets(self, tenant: str, names: Sequence[str]) -> list[SealedSecret]:
        rows = self._secret_rows()
        found = (rows.get((tenant, n)) for n in dict.fromkeys(names))
        return [s for s in found if s is not None]

    async def list_secrets(self, tenant: str) -> list[SecretInfo]:
        return [s.info for (t, _), s in sorted(self._secret_rows().items()) if t == tenant]

    async def delete_secret(self, tenant: str, name: str) -> bool:
        return self._secret_rows().pop((tenant, name), None) is not None

    async def stale_secrets(self, params: StaleSecretsParams) -> list[SealedSecret]:
        after = params.after or ("", "")
        rows = sorted(
            (k, s)
            for k, s in self._secret_rows().items()
            if s.info.key_id != params.key_id and k > after
        )
        return [s for _, s in rows[: params.limit]]

    async def reseal_secrets(self, params: Sequence[ResealParams]) -> int:
        rows = self._secret_rows()
        applied = 0
        for c in params:
            old = rows.get((c.tenant, c.name))
            if old is None or old.info.version != c.version:
                continue
            rows[(c.tenant, c.name)] = SealedSecret(
                replace(old.info, key_id=c.key_id), c.ciphertext, c.nonce
            )
            applied += 1
        return applied
