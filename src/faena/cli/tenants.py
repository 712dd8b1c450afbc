"""``faena tenants create|list`` and ``faena audit list`` (operator / ``audit:read`` keys)."""

from __future__ import annotations

from typing import Any

import click
import httpx

from faena.cli.context import CliContext, json_option, pass_cli
from faena.cli.output import print_json, print_table
from faena.client import Client
from faena.client_models import decode, unreachable


def _call(client: Client, method: str, path: str, **kwargs: Any) -> Any:
    try:
        response = client._http.request(method, path, **kwargs)
    except httpx.TransportError as e:
        raise unreachable(e, client.server, client.timeout) from None
    return decode(response, client.server)


@click.group()
def tenants() -> None:
    """Create and list tenants (needs an admin key of the 'default' tenant)."""


@tenants.command()
@click.argument("name")
@click.option("--display-name", metavar="TEXT", help="a human name for the tenant")
@json_option
@pass_cli
def create(cli: CliContext, *, name: str, display_name: str | None) -> None:
    """Create the tenant NAME (lowercase letters, digits, '-', '_', '.')."""
    body: dict[str, Any] = {"name": name}
    if display_name is not None:
        body["display_name"] = display_name
    tenant = _call(cli.client(), "POST", "/v1/tenants", json=body)
    if cli.json:
        print_json(tenant)
    else:
        click.echo(f"created tenant {tenant['id']}")


@tenants.command("list")
@json_option
@pass_cli
def list_tenants(cli: CliContext) -> None:
    """List every tenant."""
    found = _call(cli.client(), "GET", "/v1/tenants")
    if cli.json:
        print_json(found)
        return
    rows = [[t["id"], t["display_name"] or "", t["created_at"] or ""] for t in found["tenants"]]
    print_table(["ID", "DISPLAY NAME", "CREATED"], rows)


@click.group()
def audit() -> None:
    """Read your tenant's audit log (needs the audit:read scope)."""


@audit.command("list")
@click.option("--action", metavar="A", help="e.g. jobs.submit, keys.create, auth.failed")
@click.option("--outcome", type=click.Choice(["ok", "denied", "error"]))
@click.option("--key-prefix", metavar="P", help="the visible prefix of a key (fk_...)")
@click.option("--target", metavar="T", help="an object id (job, key, workflow...)")
@click.option("--since", metavar="TIME", help="ISO 8601 or epoch seconds (inclusive)")
@click.option("--until", metavar="TIME", help="ISO 8601 or epoch seconds (exclusive)")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--cursor", metavar="C", help="next_cursor of the previous page")
@json_option
@pass_cli
def list_audit(cli: CliContext, /, **filters: Any) -> None:
    """List audit entries, newest first."""
    params = {k: v for k, v in filters.items() if v is not None}
    page = _call(cli.client(), "GET", "/v1/audit", params=params)
    if cli.json:
        print_json(page)
        return
    rows = [
        [
            e["at"] or "",
            e["action"],
            e["outcome"],
            str(e["status"] or ""),
            e["target"] or "",
            e["key_prefix"] or "",
            e["client_ip"] or "",
        ]
        for e in page["entries"]
    ]
    print_table(["AT", "ACTION", "OUTCOME", "STATUS", "TARGET", "KEY", "CLIENT"], rows)
    if page.get("next_cursor"):
        click.echo(f"more: --cursor {page['next_cursor']}", err=True)
