"""``faena tenants``, ``faena audit list`` and ``faena keys create --rate-limit`` against a
real server on 127.0.0.1 (the operator's bootstrap key)."""

from __future__ import annotations

import json
import uuid

from tests.unit.test_cli import faena, one_error_line, server

__all__ = ["faena", "server"]  # the fixtures this module shares with test_cli


def test_tenants_create_and_list(faena) -> None:  # type: ignore[no-untyped-def]
    name = f"t-{uuid.uuid4().hex[:8]}"
    created = faena("tenants", "create", name, "--display-name", "Team T")
    assert created.exit_code == 0, created.output
    assert created.stdout.strip() == f"created tenant {name}"
    listed = faena("--json", "tenants", "list")
    tenants = {t["id"]: t for t in json.loads(listed.stdout)["tenants"]}
    assert tenants[name]["display_name"] == "Team T"
    assert "default" in tenants
    again = faena("tenants", "create", name)
    assert again.exit_code != 0
    assert "already exists" in one_error_line(again)


def test_a_key_for_a_new_tenant_with_a_rate_limit(faena) -> None:  # type: ignore[no-untyped-def]
    name = f"t-{uuid.uuid4().hex[:8]}"
    assert faena("tenants", "create", name).exit_code == 0
    made = faena("--json", "keys", "create", "k", "--tenant", name, "--rate-limit", "120")
    assert made.exit_code == 0, made.output
    key = json.loads(made.stdout)
    assert (key["tenant"], key["rate_limit"]) == (name, 120)
    missing = faena("keys", "create", "k", "--tenant", "no-such-tenant")
    assert "does not exist" in one_error_line(missing)


def test_audit_list_shows_the_calls(faena) -> None:  # type: ignore[no-untyped-def]
    name = f"t-{uuid.uuid4().hex[:8]}"
    assert faena("tenants", "create", name).exit_code == 0
    found = faena("--json", "audit", "list", "--action", "tenants.create", "--limit", "500")
    assert found.exit_code == 0, found.output
    entries = json.loads(found.stdout)["entries"]
    assert any(e["target"] == name and e["outcome"] == "ok" for e in entries)
    table = faena("audit", "list", "--action", "tenants.create", "--limit", "1")
    assert table.stdout.splitlines()[0].split() == [
        "AT", "ACTION", "OUTCOME", "STATUS", "TARGET", "KEY", "CLIENT"
    ]  # fmt: skip
    assert "tenants.create" in table.stdout
