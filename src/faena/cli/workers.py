"""``faena workers list`` and ``faena workers token create|list|revoke``."""

from __future__ import annotations

from typing import Any

import click

from faena.cli.context import CliContext, json_option, pass_cli
from faena.cli.output import print_json


@click.group()
def workers() -> None:
    """Workers (local pools and remote agents) and the tokens remote workers connect with."""


@workers.command("list")
@json_option
@pass_cli
def list_workers(cli: CliContext) -> None:
    """Workers seen in the last day: the tenant each serves (* for shared workers and local
    pools, listed to the operator only), kinds, labels, capacity, live CPU/RAM, running jobs,
    and the kinds a remote worker offers that no job was submitted for lately (IDLE KINDS)."""
    found: list[dict[str, Any]] = cli.client()._call("GET", "/v1/workers")["workers"]
    if cli.json:
        print_json(found)
        return
    if not found:
        click.echo("no workers (start one with 'faena worker' or run 'faena up')")
        return
    rows: list[tuple[str, ...]] = [
        (
            "ID",
            "KIND",
            "TENANT",
            "STATE",
            "SLOTS",
            "RUN",
            "CPU%",
            "RAM%",
            "LABELS",
            "HEARTBEAT",
            "IDLE KINDS",
        )
    ]
    for w in found:
        state = w["state"] if w["live"] else "gone"
        labels = ",".join(f"{k}={v}" for k, v in sorted(w["labels"].items())) or "-"
        rows.append(
            (
                w["id"],
                w["kind"],
                w.get("tenant") or "*",
                state,
                str(w["capacity"]["slots"]),
                str(w["running"]),
                f"{w['load']['cpu_percent']:.0f}",
                f"{w['load']['memory_percent']:.0f}",
                labels,
                str(w["last_heartbeat"] or "-"),
                ",".join(w.get("idle_kinds") or []) or "-",
            )
        )
    _table(rows)


@workers.group()
def token() -> None:
    """Create, list and revoke worker tokens (needs the 'workers' scope)."""


@token.command("create")
@click.argument("name")
@click.option(
    "--shared",
    is_flag=True,
    default=False,
    help="its workers serve every tenant (operator only: an admin key of the default tenant)",
)
@json_option
@pass_cli
def create_token(cli: CliContext, name: str, shared: bool) -> None:
    """Create a worker token called NAME and print it (it is shown once). Its workers run the
    jobs of the key's tenant only, unless --shared."""
    body: dict[str, Any] = {"name": name}
    if shared:
        body["shared"] = True
    created = cli.client()._call("POST", "/v1/workers/tokens", body=body)
    if cli.json:
        print_json(created)
        return
    click.echo(created["token"])
    click.echo(
        f"created worker token {created['id']} ({created['name']}); start a worker with "
        "'faena worker --server HOST:PORT --token TOKEN'; store it now: it is not shown again",
        err=True,
    )


@token.command("list")
@json_option
@pass_cli
def list_tokens(cli: CliContext) -> None:
    """List worker tokens (never the tokens themselves)."""
    found: list[dict[str, Any]] = cli.client()._call("GET", "/v1/workers/tokens")["tokens"]
    if cli.json:
        print_json(found)
        return
    rows: list[tuple[str, ...]] = [("ID", "NAME", "PREFIX", "SERVES", "CREATED", "REVOKED")]
    rows += [
        (
            t["id"],
            t["name"],
            t["prefix"],
            "every tenant" if t.get("shared") else t["tenant"],
            str(t["created_at"]),
            str(t["revoked_at"] or "-"),
        )
        for t in found
    ]
    _table(rows)


@token.command("revoke")
@click.argument("token_id")
@json_option
@pass_cli
def revoke_token(cli: CliContext, token_id: str) -> None:
    """Revoke a worker token: workers using it are disconnected and refused."""
    revoked = cli.client()._call("DELETE", f"/v1/workers/tokens/{token_id}")
    if cli.json:
        print_json(revoked)
        return
    click.echo(f"revoked worker token {revoked['id']} ({revoked['name']})")


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
