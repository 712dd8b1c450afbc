"""Tenants: the isolation boundary. Every key, job, workflow, run, event, secret, worker token
and audit entry carries one; the ``default`` tenant is the operator's and always exists."""

from __future__ import annotations

import re
from dataclasses import dataclass

from faena.domain.errors import ValidationError
from faena.domain.jobs import DEFAULT_TENANT

OPERATOR_TENANT = DEFAULT_TENANT
MAX_TENANT_LENGTH = 63
# Tenant names go into URLs, log lines, NOTIFY payloads and PostgreSQL settings: keep them plain.
_TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str  # the name every scoped row carries in its ``tenant`` column
    created_at: float
    display_name: str | None = None


def check_tenant_name(name: str) -> str:
    """``name`` if it is a valid new tenant name, else a ValidationError saying why."""
    if not isinstance(name, str) or not 0 < len(name) <= MAX_TENANT_LENGTH:
        raise ValidationError(f"a tenant name has 1 to {MAX_TENANT_LENGTH} characters")
    if not _TENANT_NAME.match(name):
        raise ValidationError(
            "a tenant name uses lowercase letters, digits, '-', '_' and '.', "
            f"and starts with a letter or digit (got {name!r})"
        )
    return name
