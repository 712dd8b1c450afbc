"""``faena keys create|list|revoke`` (needs an admin key)."""

from __future__ import annotations

import time

import click

from faena.cli.context import CliContext, json_option, pass_cli
from faena.cli.output import print_json, print_keys_table

DEFAULT_SCOPES = ("jobs:read", "jobs:write")


@click.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command()
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    metavar="S",
    help="repeat for several (default: jobs:read and jobs:write; 'admin' for everything)",
)
@click.option(
    "--tenant", metavar="T",
    help="the key's tenant (default: yours; another, existing one: operator only)",
)  # fmt: skip
@click.option(
    "--expires-in", type=click.FloatRange(min=0, min_open=True), metavar="S",
    help="the key stops working after S seconds",
)  # fmt: skip
@click.option(
    "--rate-limit", type=click.IntRange(min=1), metavar="N",
    help="at most N requests a minute with this key (default: the server's limit)",
)  # fmt: skip
@click.option(
    "--rate-limit-bulk", type=click.IntRange(min=1), metavar="N",
    help="at most N bulk requests (POST /v1/jobs/batch) a minute "
    "(default: a tenth of --rate-limit, else the server's)",
)  # fmt: skip
@click.option(
    "--rate-limit-health", type=click.IntRange(min=1), metavar="N",
    help="at most N health checks a minute presenting this key, in a bucket of its own "
    "(default: the client address's)",
)  # fmt: skip
@json_option
@pass_cli
def create(
    cli: CliContext,
    *,
    name: str,
    scopes: tuple[str, ...],
    tenant: str | None,
    expires_in: float | None,
    rate_limit: int | None,
    rate_limit_bulk: int | None,
    rate_limit_health: int | None,
) -> None:
    """Create a key called NAME and print it (it is shown once)."""
    expires_at = None if expires_in is None else time.time() + expires_in
    key = cli.client().create_key(
        name,
        scopes or DEFAULT_SCOPES,
        tenant=tenant,
        expires_at=expires_at,
        rate_limit=rate_limit,
        rate_limit_bulk=rate_limit_bulk,
        rate_limit_health=rate_limit_health,
    )
    if cli.json:
        print_json(key)  # the plaintext is its `key` field
        return
    click.echo(key.key)
    click.echo(
        f"created key {key.id} ({key.name}; tenant {key.tenant}; scopes {', '.join(key.scopes)}); "
        "store it now: it is not shown again",
        err=True,
    )


@keys.command("list")
@json_option
@pass_cli
def list_keys(cli: CliContext) -> None:
    """List the keys of your tenant."""
    found = cli.client().list_keys()
    if cli.json:
        print_json({"keys": found})
    else:
        print_keys_table(found)


@keys.command()
@click.argument("key_id", metavar="ID")
@json_option
@pass_cli
def revoke(cli: CliContext, key_id: str) -> None:
    """Revoke a key; it stops working at once on this server (within 5 s on others)."""
    key = cli.client().revoke_key(key_id)
    if cli.json:
        print_json(key)
    else:
        click.echo(f"revoked {key.id} ({key.name})")
