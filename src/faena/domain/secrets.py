"""Secrets: names, what the store keeps of one (never the value), and ``{{ secrets.NAME }}``.

A payload carries the *reference* ``{{ secrets.NAME }}``, stored verbatim; the value is put in
only in the copy handed to the worker (:func:`substitute`), so a job row, an event or an API
answer never holds it. Pure: no I/O, no cryptography.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from faena.domain.errors import Unavailable, ValidationError

NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
_NAME = re.compile(NAME_PATTERN)
MAX_VALUE_BYTES = 64 * 1024  # a credential, a certificate: not a document
MIN_VALUE_LENGTH = 4  # shorter values could not be masked in logs (they match ordinary text)
# ``{{ secrets.NAME }}`` and ``{{ secrets['NAME'] }}``, spaces optional: the reference form.
REFERENCE = re.compile(
    r"\{\{\s*secrets(?:\.(?P<attr>" + NAME_PATTERN + r")|\[\s*(?P<q>['\"])(?P<key>"
    + NAME_PATTERN + r")(?P=q)\s*\])\s*\}\}"
)  # fmt: skip


class SecretError(ValidationError):
    """A job refers to a secret that cannot be handed out: unknown, or not decryptable with
    the configured keys. The job fails without retry; the message names the secret, never its
    value (HTTP 422 where a call refers to one)."""

    code = "secret"


class SecretsUnavailable(Unavailable):
    """No master key is configured (``FAENA_SECRET_KEY``), so secrets cannot be stored or read
    (HTTP 503): a PostgreSQL server does not invent a key only it would know."""

    code = "secrets_unavailable"


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """What anyone may see of a secret: its name and history, never its value."""

    tenant: str
    name: str
    version: int  # 1 on creation, +1 on every change of value
    key_id: str  # fingerprint of the master key its ciphertext is under
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class SealedSecret:
    """A stored secret: AES-256-GCM ciphertext (with its tag) and nonce, under ``key_id``."""

    info: SecretInfo
    ciphertext: bytes
    nonce: bytes


def check_name(name: str) -> str:
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise ValidationError(
            f"bad secret name {str(name)[:80]!r}: use letters, digits and _ "
            "(not starting with a digit), at most 64 characters"
        )
    return name


def check_value(value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError("a secret's value must be a string")
    if len(value) < MIN_VALUE_LENGTH:
        raise ValidationError(
            f"a secret's value needs at least {MIN_VALUE_LENGTH} characters "
            "(a shorter one could not be masked in logs)"
        )
    if len(value.encode()) > MAX_VALUE_BYTES:
        raise ValidationError(f"a secret's value is limited to {MAX_VALUE_BYTES} bytes")
    return value


def associated_data(tenant: str, name: str) -> bytes:
    """Bound into each ciphertext: a row copied to another tenant or name does not decrypt."""
    return f"faena-secret\0{tenant}\0{name}".encode()


def reference(name: str) -> str:
    """The canonical reference text to ``name``."""
    return "{{ secrets." + name + " }}"


def _names_in(text: str) -> Iterator[str]:
    for m in REFERENCE.finditer(text):
        yield m.group("attr") or m.group("key")


_NONE: frozenset[str] = frozenset()


def references_in(value: Any) -> frozenset[str]:
    """The secret names a JSON value refers to (in strings, dict keys too). Called for every
    job handed to a worker: most payloads have no reference, which one encode and one substring
    search tell (a few microseconds less than walking the value)."""
    if value is None or isinstance(value, bool | int | float):
        return _NONE
    if isinstance(value, str):
        return frozenset(_names_in(value)) if "secrets" in value else _NONE
    try:
        if b"secrets" not in orjson.dumps(value):
            return _NONE
    except TypeError:
        pass  # not plain JSON: walk it
    found: set[str] = set()
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "secrets" in v:
                found.update(_names_in(v))
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
    return frozenset(found)


def substitute(value: Any, values: Mapping[str, str]) -> Any:
    """A copy of ``value`` with every reference replaced by its secret's value (every name
    referred to must be in ``values``)."""
    if isinstance(value, str):
        if "secrets" not in value:
            return value
        return REFERENCE.sub(lambda m: values[m.group("attr") or m.group("key")], value)
    if isinstance(value, list):
        return [substitute(v, values) for v in value]
    if isinstance(value, dict):
        return {substitute(k, values): substitute(v, values) for k, v in value.items()}
    return value
