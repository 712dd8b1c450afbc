"""Artefacts: files jobs consume and produce (attachments, documents, reports).

The metadata lives in the store; the bytes live in a blob store under :func:`blob_key`. A
payload or a step output refers to an artefact as ``{"artefact": "<id>"}`` or with a string
field ``artefact_id``; :func:`artefact_refs` finds those references.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

ARTEFACT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MAX_NAME_LEN = 255
MAX_CONTENT_TYPE_LEN = 255
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;.{0,200})?$")


@dataclass(frozen=True, slots=True)
class Artefact:
    """One stored file, owned by a tenant; ``job_id`` is the job that produced it, if any."""

    id: str
    tenant: str
    name: str
    content_type: str
    size: int
    sha256: str
    created_at: float
    job_id: str | None = None
    expires_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "name": self.name,
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
            "created_at": self.created_at,
            "job_id": self.job_id,
            "expires_at": self.expires_at,
        }


def is_artefact_id(value: object) -> bool:
    return isinstance(value, str) and ARTEFACT_ID.match(value) is not None


def blob_key(tenant: str, artefact_id: str) -> str:
    """Where an artefact's bytes live: one blob per artefact (no reference counting to get
    wrong when one of two identical uploads is deleted). The tenant is not in the key: ids are
    unique, and tenant names may hold characters object stores dislike."""
    del tenant
    return f"{artefact_id[-2:]}/{artefact_id}"


def clean_name(name: str | None) -> str:
    """A display name: no directories, no control characters, bounded length."""
    raw = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in raw if ch.isprintable()).strip()
    return (cleaned or "artefact")[:MAX_NAME_LEN]


def valid_content_type(value: str | None) -> bool:
    return (
        bool(value)
        and len(value or "") <= MAX_CONTENT_TYPE_LEN
        and bool(_CONTENT_TYPE.match(value or ""))
    )


def artefact_refs(value: Any, *, limit: int = 1000) -> list[str]:
    """The artefact ids a payload or output refers to (``{"artefact": id}`` or ``artefact_id``),
    depth first, without duplicates."""
    found: list[str] = []
    stack = [value]
    while stack and len(found) < limit:
        item = stack.pop()
        if isinstance(item, dict):
            for key in ("artefact", "artefact_id"):
                ref = item.get(key)
                if isinstance(ref, str) and is_artefact_id(ref) and ref not in found:
                    found.append(ref)
            stack.extend(v for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, (dict, list)))
    return found
