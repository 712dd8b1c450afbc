"""API keys: stored hashed, found by visible prefix, listed and revoked per tenant."""

from __future__ import annotations

import pytest

from faena.domain.auth import ApiKey, generate_key, hash_key, visible_prefix
from faena.domain.errors import Conflict, NotFound
from faena.ports.store import JobStore
from tests.contract.support import NOW


def make_key(key_id: str, tenant: str = "default", created_at: float = NOW) -> ApiKey:
    plaintext = generate_key()
    return ApiKey(
        id=key_id,
        tenant=tenant,
        name=f"key {key_id}",
        prefix=visible_prefix(plaintext),
        key_hash=hash_key(plaintext),
        scopes=("jobs:write", "jobs:read"),
        created_at=created_at,
        expires_at=NOW + 86_400,
    )


async def test_created_key_is_found_by_its_prefix(store: JobStore) -> None:
    """find_api_keys returns the stored key, every field intact."""
    key = make_key("k1")
    await store.create_api_key(key)
    await store.create_api_key(make_key("k2"))
    assert await store.find_api_keys(key.prefix) == [key]


async def test_unknown_prefix_finds_nothing(store: JobStore) -> None:
    """No key with that prefix: an empty list."""
    assert await store.find_api_keys("fk_nothing") == []


async def test_keys_are_listed_per_tenant_oldest_first(store: JobStore) -> None:
    """A tenant sees its own keys only, in creation order."""
    second = make_key("k2", created_at=NOW + 1)
    first = make_key("k1", created_at=NOW)
    for key in (second, first, make_key("k3", tenant="other")):
        await store.create_api_key(key)
    assert await store.list_api_keys("default") == [first, second]


async def test_revoke_marks_the_key_revoked(store: JobStore) -> None:
    """A revoked key keeps its row, with revoked_at set, and is no longer active."""
    await store.create_api_key(make_key("k1"))
    revoked = await store.revoke_api_key("default", "k1", NOW + 5)
    assert revoked.revoked_at == NOW + 5
    assert not revoked.is_active(NOW + 6)
    assert await store.list_api_keys("default") == [revoked]


async def test_revoking_twice_keeps_the_first_time(store: JobStore) -> None:
    """Revoke is idempotent: the original revocation time stays."""
    await store.create_api_key(make_key("k1"))
    await store.revoke_api_key("default", "k1", NOW + 5)
    again = await store.revoke_api_key("default", "k1", NOW + 9)
    assert again.revoked_at == NOW + 5


async def test_revoking_another_tenants_key_is_not_found(store: JobStore) -> None:
    """Keys of other tenants read as missing and stay active."""
    await store.create_api_key(make_key("k1", tenant="a"))
    with pytest.raises(NotFound):
        await store.revoke_api_key("b", "k1", NOW)
    (key,) = await store.list_api_keys("a")
    assert key.revoked_at is None


async def test_count_api_keys_counts_every_key(store: JobStore) -> None:
    """The count spans tenants and includes revoked keys."""
    assert await store.count_api_keys() == 0
    await store.create_api_key(make_key("k1", tenant="a"))
    await store.create_api_key(make_key("k2", tenant="b"))
    await store.revoke_api_key("b", "k2", NOW)
    assert await store.count_api_keys() == 2


async def test_creating_a_key_with_a_used_id_is_a_conflict(store: JobStore) -> None:
    """Key ids are unique."""
    await store.create_api_key(make_key("k1"))
    with pytest.raises(Conflict):
        await store.create_api_key(make_key("k1"))
