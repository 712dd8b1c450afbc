"""Secrets: sealed with the master key before they reach the vault, opened only to hand a job to
its worker (or for a service that needs one, such as a mail account's password).

Every write, delete and read is audited (``secrets.write``, ``secrets.delete``,
``secrets.resolve`` with the job, ``secrets.read`` for other uses). Values opened are cached in
this process for ``cache_ttl_s`` (5 s), so a burst of jobs using one secret decrypts it once;
a change made through another server is seen within that time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from faena.domain.audit import AuditEntry
from faena.domain.errors import NotFound
from faena.domain.jobs import Job
from faena.domain.secrets import (
    SealedSecret,
    SecretError,
    SecretInfo,
    SecretsUnavailable,
    associated_data,
    check_name,
    check_value,
    references_in,
    substitute,
)
from faena.ports.clock import Clock
from faena.ports.secrets import (
    PutSecretParams,
    ResealParams,
    SecretCipher,
    SecretVault,
    StaleSecretsParams,
)

NO_KEY = (
    "secrets are not available: no master key is configured; set FAENA_SECRET_KEY "
    "(make one with 'faena secrets gen-key') on every server"
)


class Auditor(Protocol):
    """What the service needs of :class:`faena.services.audit.AuditLog`."""

    async def record(self, entry: AuditEntry) -> None: ...


@dataclass(frozen=True, slots=True)
class RotationReport:
    resealed: int  # secrets re-encrypted under the current key by this call
    skipped: int  # changed while being re-encrypted (they are under the current key already)
    key_id: str


@dataclass(frozen=True, slots=True)
class HandOff:
    """A job as its worker gets it (references replaced), and the values the worker must mask
    in everything it sends back."""

    job: Job
    mask: tuple[str, ...]


class SecretService:
    def __init__(
        self,
        vault: SecretVault,
        cipher: SecretCipher | None,
        clock: Clock,
        *,
        audit: Auditor | None = None,
        cache_ttl_s: float = 5.0,
        unavailable: str = NO_KEY,
    ) -> None:
        self._vault = vault
        self._cipher = cipher
        self._clock = clock
        self._audit = audit
        self._ttl = cache_ttl_s
        self._unavailable = unavailable
        self._cache: dict[tuple[str, str], tuple[str, float]] = {}

    def set_audit(self, audit: Auditor) -> None:
        self._audit = audit

    def use_cipher(self, cipher: SecretCipher) -> None:
        """Set the key ring once it exists (an embedded server creates its key on start)."""
        self._cipher = cipher
        self._cache.clear()

    @property
    def available(self) -> bool:
        return self._cipher is not None

    def _require_cipher(self) -> SecretCipher:
        if self._cipher is None:
            raise SecretsUnavailable(self._unavailable)
        return self._cipher

    # -- managing ---------------------------------------------------------------------------

    async def put(
        self, tenant: str, name: str, value: str, *, actor: str | None = None
    ) -> SecretInfo:
        """Create or replace ``name``; the answer never holds the value."""
        check_name(name)
        check_value(value)
        cipher = self._require_cipher()
        nonce, ciphertext = cipher.seal(value.encode(), associated_data(tenant, name))
        info = await self._vault.put_secret(
            PutSecretParams(tenant, name, ciphertext, nonce, cipher.key_id, self._clock.now())
        )
        self._cache.pop((tenant, name), None)
        await self._record(tenant, "secrets.write", name, actor, f"version {info.version}")
        return info

    async def list(self, tenant: str) -> list[SecretInfo]:
        return await self._vault.list_secrets(tenant)

    async def delete(self, tenant: str, name: str, *, actor: str | None = None) -> None:
        check_name(name)
        self._cache.pop((tenant, name), None)
        if not await self._vault.delete_secret(tenant, name):
            raise NotFound(f"secret {name!r} not found")
        await self._record(tenant, "secrets.delete", name, actor)

    # -- reading ----------------------------------------------------------------------------

    async def resolve(self, tenant: str, name: str, *, purpose: str | None = None) -> str:
        """The value of ``name`` for a service that needs it (audited ``secrets.read``).
        Raises :class:`SecretError` naming the secret when it is unknown or unreadable."""
        check_name(name)
        values = await self._open(tenant, [name])
        await self._record(tenant, "secrets.read", name, None, purpose)
        return values[name]

    async def hand_off(self, job: Job) -> HandOff:
        """``job`` with its payload's ``{{ secrets.NAME }}`` references replaced by the values,
        for the worker only; the stored job keeps the references. Audited ``secrets.resolve``
        per name. Raises :class:`SecretError` (the job must fail, not retry)."""
        names = references_in(job.payload)
        if not names:
            return HandOff(job, ())
        ordered = sorted(names)
        values = await self._open(job.tenant, ordered)
        detail = f"job {job.id}"
        await asyncio.gather(  # one group commit of the audit log for all of them
            *(self._record(job.tenant, "secrets.resolve", n, None, detail) for n in ordered)
        )
        return HandOff(
            replace(job, payload=substitute(job.payload, values)),
            tuple(values[n] for n in ordered),
        )

    async def _open(self, tenant: str, names: Sequence[str]) -> dict[str, str]:
        now = self._clock.now()
        out: dict[str, str] = {}
        missing: list[str] = []
        for name in names:
            hit = self._cache.get((tenant, name))
            if hit is not None and hit[1] > now:
                out[name] = hit[0]
            else:
                missing.append(name)
        if not missing:
            return out
        if self._cipher is None:
            raise SecretError(f"cannot read secret {missing[0]!r}: {self._unavailable}")
        sealed = {s.info.name: s for s in await self._vault.get_secrets(tenant, missing)}
        unknown = [n for n in missing if n not in sealed]
        if unknown:
            listed = ", ".join(repr(n) for n in unknown)
            word = "secret" if len(unknown) == 1 else "secrets"
            raise SecretError(f"unknown {word} {listed}: set it with 'faena secrets set NAME'")
        for name in missing:
            value = self._decrypt(self._cipher, sealed[name])
            out[name] = value
            if self._ttl > 0:
                self._cache[(tenant, name)] = (value, now + self._ttl)
        if len(self._cache) > 10_000:
            self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
        return out

    @staticmethod
    def _decrypt(cipher: SecretCipher, s: SealedSecret) -> str:
        try:
            plain = cipher.open(
                s.info.key_id, s.nonce, s.ciphertext, associated_data(s.info.tenant, s.info.name)
            )
        except SecretError as e:
            raise SecretError(f"cannot read secret {s.info.name!r}: {e.message}") from None
        return plain.decode()

    # -- rotation ---------------------------------------------------------------------------

    async def rotate(self, *, batch: int = 100, max_batches: int | None = None) -> RotationReport:
        """Re-encrypt, batch by batch, every secret not under the current key (all tenants).
        Resumable: each batch is committed, and a row already under the current key is not
        read again. A secret under a key that is not configured stops the rotation with an
        error naming it (nothing is lost: that row is left as it was)."""
        cipher = self._require_cipher()
        resealed = skipped = 0
        after: tuple[str, str] | None = None
        batches = 0
        while max_batches is None or batches < max_batches:
            rows = await self._vault.stale_secrets(
                StaleSecretsParams(key_id=cipher.key_id, limit=batch, after=after)
            )
            if not rows:
                break
            batches += 1
            changes = []
            for s in rows:
                aad = associated_data(s.info.tenant, s.info.name)
                value = self._decrypt(cipher, s).encode()
                nonce, ciphertext = cipher.seal(value, aad)
                changes.append(
                    ResealParams(
                        s.info.tenant, s.info.name, s.info.version, ciphertext, nonce,
                        cipher.key_id,
                    )
                )  # fmt: skip
            applied = await self._vault.reseal_secrets(changes)
            resealed += applied
            skipped += len(changes) - applied
            after = (rows[-1].info.tenant, rows[-1].info.name)
        if resealed:
            await self._record("default", "secrets.rotate", None, None, f"{resealed} re-encrypted")
        return RotationReport(resealed, skipped, cipher.key_id)

    async def _record(
        self,
        tenant: str,
        action: str,
        name: str | None,
        actor: str | None,
        detail: str | None = None,
    ) -> None:
        if self._audit is None:
            return
        await self._audit.record(
            AuditEntry(
                tenant=tenant,
                action=action,
                target=None if name is None else f"secret:{name}",
                key_prefix=actor,
                detail=detail,
            )
        )
