"""The vault's cryptography: AES-256-GCM under a key ring, keys as text, key files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from faena.adapters.secret_keys import (
    AesGcmKeyRing,
    create_key_file,
    generate_key,
    key_id,
    parse_key,
    read_key_files,
    rotate_key_files,
)
from faena.domain.errors import ValidationError
from faena.domain.secrets import SecretError, associated_data

AAD = associated_data("acme", "DB_PASSWORD")


def test_a_sealed_value_opens_under_the_same_key() -> None:
    ring = AesGcmKeyRing(os.urandom(32))
    nonce, ciphertext = ring.seal(b"hunter2-password", AAD)
    assert b"hunter2-password" not in ciphertext
    assert ring.open(ring.key_id, nonce, ciphertext, AAD) == b"hunter2-password"


def test_two_seals_of_one_value_differ() -> None:
    ring = AesGcmKeyRing(os.urandom(32))
    assert ring.seal(b"same-value", AAD) != ring.seal(b"same-value", AAD)


def test_another_key_cannot_open_it() -> None:
    nonce, ciphertext = AesGcmKeyRing(os.urandom(32)).seal(b"value-1234", AAD)
    other = AesGcmKeyRing(os.urandom(32))
    with pytest.raises(SecretError, match="does not decrypt"):
        other.open(other.key_id, nonce, ciphertext, AAD)
    with pytest.raises(SecretError, match="not configured"):
        other.open("0123456789abcdef", nonce, ciphertext, AAD)


def test_a_tampered_ciphertext_does_not_open() -> None:
    ring = AesGcmKeyRing(os.urandom(32))
    nonce, ciphertext = ring.seal(b"value-1234", AAD)
    flipped = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    with pytest.raises(SecretError, match="altered or moved"):
        ring.open(ring.key_id, nonce, flipped, AAD)
    with pytest.raises(SecretError, match="altered or moved"):
        ring.open(ring.key_id, bytes(12), ciphertext, AAD)


def test_a_ciphertext_moved_to_another_name_or_tenant_does_not_open() -> None:
    ring = AesGcmKeyRing(os.urandom(32))
    nonce, ciphertext = ring.seal(b"value-1234", AAD)
    for tenant, name in (("acme", "OTHER"), ("evil", "DB_PASSWORD")):
        with pytest.raises(SecretError):
            ring.open(ring.key_id, nonce, ciphertext, associated_data(tenant, name))


def test_a_previous_key_opens_and_the_current_one_seals() -> None:
    old, new = os.urandom(32), os.urandom(32)
    nonce, ciphertext = AesGcmKeyRing(old).seal(b"value-1234", AAD)
    ring = AesGcmKeyRing(new, [old])
    assert ring.key_id == key_id(new) != key_id(old)
    assert ring.knows(key_id(old))
    assert ring.open(key_id(old), nonce, ciphertext, AAD) == b"value-1234"
    nonce2, ciphertext2 = ring.seal(b"value-1234", AAD)
    assert AesGcmKeyRing(new).open(key_id(new), nonce2, ciphertext2, AAD) == b"value-1234"


def test_keys_are_base64url_text_of_32_bytes() -> None:
    text = generate_key()
    assert len(text) == 43 and "=" not in text
    assert len(parse_key(text)) == 32
    assert parse_key(text + "=") == parse_key(text)  # padding optional
    for bad in ("", "short", "!" * 43, generate_key()[:-2]):
        with pytest.raises(ValidationError, match="FAENA_SECRET_KEY must be 32 random bytes"):
            parse_key(bad)


def test_a_bad_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as caught:
        AesGcmKeyRing.from_text("not-a-key-at-all-but-secret")
    assert "not-a-key-at-all" not in caught.value.message


def test_the_key_file_is_private(tmp_path: Path) -> None:
    key = create_key_file(tmp_path)
    path = tmp_path / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_key_files(tmp_path) == (key, [])


def test_rotating_the_key_files_keeps_the_old_key_as_previous(tmp_path: Path) -> None:
    old = create_key_file(tmp_path)
    new = generate_key()
    rotate_key_files(tmp_path, new)
    assert read_key_files(tmp_path) == (new, [old])
    assert stat.S_IMODE((tmp_path / "secret.key.previous").stat().st_mode) == 0o600


def test_which_key_a_server_uses(tmp_path: Path) -> None:
    """The variable wins; embedded SQLite makes a key file on start; PostgreSQL without the
    variable runs without secrets rather than invent a key the other servers do not know."""
    from faena.bootstrap import build_secrets
    from faena.config import Settings
    from faena.ports.clock import SystemClock

    def secrets_of(url: str, **env: str) -> tuple[bool, Path | None]:
        settings = Settings.from_env({"FAENA_DATABASE_URL": url, **env}, home=tmp_path)
        service, pending = build_secrets(settings, object(), SystemClock(), None)
        return service.available, pending

    key = generate_key()
    assert secrets_of("postgresql://h/db") == (False, None)
    assert secrets_of("postgresql://h/db", FAENA_SECRET_KEY=key) == (True, None)
    assert secrets_of("sqlite:///x.db") == (False, tmp_path)  # created on start
    create_key_file(tmp_path)
    assert secrets_of("sqlite:///x.db") == (True, None)
    assert secrets_of("memory://") == (True, None)
    with pytest.raises(ValidationError, match="FAENA_SECRET_KEY must be"):
        secrets_of("postgresql://h/db", FAENA_SECRET_KEY="nope")


def test_the_settings_never_print_the_key() -> None:
    from faena.config import Settings

    key = generate_key()
    settings = Settings.from_env({"FAENA_SECRET_KEY": key, "FAENA_SECRET_KEY_PREVIOUS": key})
    assert key not in repr(settings)
