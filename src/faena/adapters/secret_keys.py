"""Master keys of the secret vault and the AES-256-GCM cipher (the SecretCipher port).

A master key is 32 random bytes written as base64url (``faena secrets gen-key``). Its id is a
fingerprint (the first 8 bytes of SHA-256 over a label and the key, in hex): stored next to
each ciphertext, it says which key opens it, and tells nothing about the key. The key ring is
the current key (seals and opens) plus previous ones (open only), so a rotation can re-encrypt
row by row while every secret stays readable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from faena.domain.errors import ValidationError
from faena.domain.secrets import SecretError

KEY_BYTES = 32
NONCE_BYTES = 12  # GCM's standard nonce; random, so at most ~2^32 seals per key is safe
KEY_FILE = "secret.key"
PREVIOUS_KEY_FILE = "secret.key.previous"


def generate_key() -> str:
    """A new master key as base64url text (43 characters, no padding)."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode().rstrip("=")


def parse_key(text: str, *, where: str = "FAENA_SECRET_KEY") -> bytes:
    """The 32 bytes of a base64url key (padding optional); a ValidationError naming ``where``
    otherwise (never echoing the text)."""
    raw = text.strip()
    try:
        key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES or not raw:
        raise ValidationError(
            f"{where} must be {KEY_BYTES} random bytes in base64url "
            "(make one with 'faena secrets gen-key')"
        )
    return key


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"faena-secret-key-id\0" + key).hexdigest()[:16]


class AesGcmKeyRing:
    """The :class:`~faena.ports.secrets.SecretCipher`: seals under ``current``, opens under
    ``current`` or any of ``previous``."""

    def __init__(self, current: bytes, previous: Iterable[bytes] = ()) -> None:
        self._current_id = key_id(current)
        self._current = AESGCM(current)
        self._ciphers = {key_id(k): AESGCM(k) for k in previous}
        self._ciphers[self._current_id] = self._current

    @classmethod
    def from_text(cls, current: str, previous: Iterable[str] = ()) -> AesGcmKeyRing:
        return cls(
            parse_key(current),
            [parse_key(p, where="FAENA_SECRET_KEY_PREVIOUS") for p in previous if p.strip()],
        )

    @property
    def key_id(self) -> str:
        return self._current_id

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._ciphers)

    def knows(self, key_id: str) -> bool:
        return key_id in self._ciphers

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
        nonce = os.urandom(NONCE_BYTES)
        return nonce, self._current.encrypt(nonce, plaintext, aad)

    def open(self, key_id: str, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise SecretError(
                f"it is encrypted under key {key_id}, which is not configured "
                "(set FAENA_SECRET_KEY, or FAENA_SECRET_KEY_PREVIOUS during a rotation)"
            )
        try:
            return cipher.decrypt(nonce, ciphertext, aad)
        except (InvalidTag, ValueError):
            raise SecretError(
                "it does not decrypt: its stored ciphertext was altered or moved"
            ) from None


def read_key_files(home: Path) -> tuple[str | None, list[str]]:
    """The key in ``$FAENA_HOME/secret.key`` (None if absent) and those in
    ``secret.key.previous`` (one a line)."""
    current_path, previous_path = home / KEY_FILE, home / PREVIOUS_KEY_FILE
    current = current_path.read_text().strip() if current_path.exists() else None
    previous = (
        [line.strip() for line in previous_path.read_text().splitlines() if line.strip()]
        if previous_path.exists()
        else []
    )
    return current or None, previous


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def create_key_file(home: Path) -> str:
    """Generate a key into ``$FAENA_HOME/secret.key`` (0600) and return it."""
    key = generate_key()
    write_private(home / KEY_FILE, key + "\n")
    return key


def rotate_key_files(home: Path, new_key: str) -> None:
    """Make ``new_key`` the current key of the files; the old one joins the previous keys
    (written first, so a crash in between leaves both keys known)."""
    parse_key(new_key, where="the new key")
    current, previous = read_key_files(home)
    if current is not None and current not in previous:
        previous.append(current)
    write_private(home / PREVIOUS_KEY_FILE, "".join(p + "\n" for p in previous))
    write_private(home / KEY_FILE, new_key.strip() + "\n")
