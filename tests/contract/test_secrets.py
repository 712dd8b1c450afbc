"""The SecretVault on every store, through the SecretService: values sealed, tenant-scoped,
versioned, resolved at hand-off, rotated to a new key."""

from __future__ import annotations

import os
from typing import Any

import pytest

from faena.adapters.secret_keys import AesGcmKeyRing
from faena.domain.errors import NotFound
from faena.domain.jobs import Job, JobState
from faena.domain.secrets import SecretError, SecretsUnavailable
from faena.ports.clock import SystemClock
from faena.ports.secrets import PutSecretParams, ResealParams
from faena.services.secrets import SecretService

VALUE = "pa55-w0rd-in-clear"


class _Audit:
    def __init__(self) -> None:
        self.entries: list[Any] = []

    async def record(self, entry: Any) -> None:
        self.entries.append(entry)


def _service(store: Any, ring: AesGcmKeyRing | None = None, **kw: Any) -> SecretService:
    return SecretService(store, ring or AesGcmKeyRing(os.urandom(32)), SystemClock(), **kw)


def _job(tenant: str, payload: Any) -> Job:
    return Job(
        id="j1", tenant=tenant, kind="shell", queue="default", state=JobState.RUNNING,
        payload=payload, priority=0, labels={}, max_attempts=1, attempts=1, created_at=0.0,
    )  # fmt: skip


async def test_a_secret_is_stored_sealed_and_resolves_to_its_value(store: Any) -> None:
    audit = _Audit()
    secrets = _service(store, audit=audit)
    info = await secrets.put("acme", "DB_PW", VALUE)
    assert (info.tenant, info.name, info.version) == ("acme", "DB_PW", 1)
    [sealed] = await store.get_secrets("acme", ["DB_PW"])
    assert VALUE.encode() not in sealed.ciphertext and sealed.info.key_id == info.key_id
    assert await secrets.resolve("acme", "DB_PW") == VALUE
    assert [(e.action, e.target) for e in audit.entries] == [
        ("secrets.write", "secret:DB_PW"),
        ("secrets.read", "secret:DB_PW"),
    ]


async def test_setting_again_replaces_the_value_and_bumps_the_version(store: Any) -> None:
    secrets = _service(store)
    first = await secrets.put("acme", "TOKEN", "first-value")
    second = await secrets.put("acme", "TOKEN", "second-value")
    assert second.version == 2 and second.created_at == first.created_at
    assert await secrets.resolve("acme", "TOKEN") == "second-value"


async def test_list_shows_names_of_the_tenant_only(store: Any) -> None:
    secrets = _service(store)
    await secrets.put("acme", "B", "value-b")
    await secrets.put("acme", "A", "value-a")
    await secrets.put("other", "C", "value-c")
    assert [s.name for s in await secrets.list("acme")] == ["A", "B"]
    assert [s.name for s in await secrets.list("other")] == ["C"]
    assert await secrets.list("nobody") == []


async def test_another_tenant_cannot_resolve_or_delete_it(store: Any) -> None:
    secrets = _service(store)
    await secrets.put("acme", "DB_PW", VALUE)
    with pytest.raises(SecretError, match="unknown secret 'DB_PW'"):
        await secrets.resolve("other", "DB_PW")
    with pytest.raises(NotFound):
        await secrets.delete("other", "DB_PW")
    assert await secrets.resolve("acme", "DB_PW") == VALUE


async def test_delete_removes_it(store: Any) -> None:
    secrets = _service(store, cache_ttl_s=0)
    await secrets.put("acme", "GONE", "value-1")
    await secrets.delete("acme", "GONE")
    assert await secrets.list("acme") == []
    with pytest.raises(SecretError, match="unknown secret 'GONE'"):
        await secrets.resolve("acme", "GONE")
    with pytest.raises(NotFound):
        await secrets.delete("acme", "GONE")


async def test_a_row_copied_to_another_tenant_does_not_decrypt(store: Any) -> None:
    secrets = _service(store)
    await secrets.put("acme", "DB_PW", VALUE)
    [sealed] = await store.get_secrets("acme", ["DB_PW"])
    await store.put_secret(
        PutSecretParams("evil", "DB_PW", sealed.ciphertext, sealed.nonce, sealed.info.key_id, 1.0)
    )
    with pytest.raises(SecretError, match="cannot read secret 'DB_PW'") as caught:
        await secrets.resolve("evil", "DB_PW")
    assert VALUE not in str(caught.value)


async def test_hand_off_resolves_the_payload_copy_only(store: Any) -> None:
    audit = _Audit()
    secrets = _service(store, audit=audit)
    await secrets.put("acme", "USER", "svc-user")
    await secrets.put("acme", "PW", VALUE)
    payload = {"cmd": "login {{ secrets.USER }}:{{ secrets.PW }}", "n": 1}
    job = _job("acme", payload)
    handoff = await secrets.hand_off(job)
    assert handoff.job.payload == {"cmd": f"login svc-user:{VALUE}", "n": 1}
    assert sorted(handoff.mask) == sorted(["svc-user", VALUE])
    assert job.payload == payload  # the stored job keeps the references
    assert [e.detail for e in audit.entries if e.action == "secrets.resolve"] == ["job j1"] * 2
    plain = await secrets.hand_off(_job("acme", {"cmd": "echo hi"}))
    assert plain.mask == () and plain.job.payload == {"cmd": "echo hi"}


async def test_hand_off_of_an_unknown_secret_names_it(store: Any) -> None:
    secrets = _service(store)
    await secrets.put("acme", "KNOWN", VALUE)
    job = _job("acme", ["{{ secrets.KNOWN }}", "{{ secrets.MISSING }}"])
    with pytest.raises(SecretError, match="unknown secret 'MISSING'") as caught:
        await secrets.hand_off(job)
    assert VALUE not in caught.value.message


async def test_without_a_master_key_secrets_are_refused_clearly(store: Any) -> None:
    secrets = SecretService(store, None, SystemClock())
    with pytest.raises(SecretsUnavailable, match="FAENA_SECRET_KEY"):
        await secrets.put("acme", "X", VALUE)
    with pytest.raises(SecretError, match="FAENA_SECRET_KEY"):
        await secrets.hand_off(_job("acme", "{{ secrets.X }}"))


async def test_rotation_reencrypts_every_tenant_in_resumable_batches(store: Any) -> None:
    old, new = os.urandom(32), os.urandom(32)
    before = _service(store, AesGcmKeyRing(old))
    expected = {}
    for i in range(5):
        tenant = f"t{i % 3}"
        await before.put(tenant, f"S{i}", f"value-{i}")
        expected[(tenant, f"S{i}")] = f"value-{i}"
    rotating = _service(store, AesGcmKeyRing(new, [old]))
    first = await rotating.rotate(batch=2, max_batches=1)  # interrupted after one batch
    assert first.resealed == 2
    rest = await rotating.rotate(batch=2)
    assert rest.resealed == 3 and rest.key_id == AesGcmKeyRing(new).key_id
    assert (await rotating.rotate()).resealed == 0
    after = _service(store, AesGcmKeyRing(new))  # the old key is no longer needed
    for (tenant, name), value in expected.items():
        assert await after.resolve(tenant, name) == value
        [sealed] = await store.get_secrets(tenant, [name])
        assert sealed.info.key_id == rest.key_id and sealed.info.version == 1


async def test_a_reseal_loses_to_a_concurrent_change_of_value(store: Any) -> None:
    ring = AesGcmKeyRing(os.urandom(32))
    secrets = _service(store, ring)
    await secrets.put("acme", "X", "value-1")
    [sealed] = await store.get_secrets("acme", ["X"])
    await secrets.put("acme", "X", "value-2")  # version 2 now
    stale = ResealParams("acme", "X", 1, sealed.ciphertext, sealed.nonce, "another-key-id")
    assert await store.reseal_secrets([stale]) == 0
    assert await _service(store, ring).resolve("acme", "X") == "value-2"
