"""``faena secrets set|list|delete`` (through the API, scope ``secrets:write``) and
``faena secrets gen-key|rotate-key`` (local: they work on the master key and the store).

A value is never taken from the command line (it would be in the shell history and in ``ps``):
``set`` reads it from stdin, from ``--from-file``, or from a hidden prompt.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click

from faena.cli.context import CliContext, json_option, pass_cli
from faena.cli.output import print_json, print_table
from faena.domain.errors import FaenaError, ValidationError


@click.group()
def secrets() -> None:
    """Store secrets (encrypted at rest) for jobs to use as {{ secrets.NAME }}."""


def _read_value(from_file: Path | None) -> str:
    if from_file is not None:
        try:
            return from_file.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise ValidationError(f"cannot read {from_file}: {e}") from None
    if not sys.stdin.isatty():
        value = sys.stdin.read()
        return value[:-1] if value.endswith("\n") else value  # `echo` adds one
    value = click.prompt("value", hide_input=True, confirmation_prompt=True, err=True)
    return str(value)


@secrets.command("set")
@click.argument("name")
@click.option(
    "--from-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="read the value from this file (as is) instead of stdin or a prompt",
)  # fmt: skip
@json_option
@pass_cli
def set_secret(cli: CliContext, name: str, from_file: Path | None) -> None:
    """Create or replace the secret NAME; the value comes from stdin, --from-file or a hidden
    prompt (never from the command line)."""
    info = cli.client().set_secret(name, _read_value(from_file))
    if cli.json:
        print_json(info)
    else:
        click.echo(f"secret {info['name']} set (version {info['version']})")


@secrets.command("list")
@json_option
@pass_cli
def list_secrets(cli: CliContext) -> None:
    """List your tenant's secrets: names and dates, never values."""
    found = cli.client().list_secrets()
    if cli.json:
        print_json({"secrets": found})
        return
    print_table(
        ("NAME", "VERSION", "KEY", "UPDATED"),
        [(s["name"], str(s["version"]), s["key_id"], _when(s["updated_at"])) for s in found],
    )


@secrets.command()
@click.argument("name")
@json_option
@pass_cli
def delete(cli: CliContext, name: str) -> None:
    """Delete the secret NAME (jobs referring to it then fail)."""
    cli.client().delete_secret(name)
    if cli.json:
        print_json({"name": name, "deleted": True})
    else:
        click.echo(f"secret {name} deleted")


@secrets.command("gen-key")
def gen_key() -> None:
    """Print a new master key (32 random bytes, base64url) for FAENA_SECRET_KEY."""
    from faena.bootstrap import new_secret_key

    click.echo(new_secret_key())


@secrets.command("rotate-key")
@click.option("--database-url", default=None, help="Store URL [FAENA_DATABASE_URL]")
@click.option(
    "--generate", is_flag=True,
    help="embedded store: make a new key in $FAENA_HOME/secret.key first (the old one is kept "
    "in secret.key.previous)",
)  # fmt: skip
@click.option(
    "--new-key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="embedded store: like --generate, with the key in this file",
)  # fmt: skip
@click.option("--batch", type=click.IntRange(1, 10_000), default=100, show_default=True)
@json_option
@pass_cli
def rotate_key(
    cli: CliContext,
    database_url: str | None,
    generate: bool,
    new_key_file: Path | None,
    batch: int,
) -> None:
    """Re-encrypt every secret under the current key, in batches; safe to interrupt and run
    again. With FAENA_SECRET_KEY: set the new key there and the old one in
    FAENA_SECRET_KEY_PREVIOUS first (on every server)."""
    from faena.bootstrap import configure_logging, new_secret_key, rotate_secret_key
    from faena.config import Settings

    if generate and new_key_file is not None:
        raise click.UsageError("give --generate or --new-key-file, not both")
    new_key: str | None = None
    if generate:
        new_key = new_secret_key()
    elif new_key_file is not None:
        try:
            new_key = new_key_file.read_text().strip()
        except OSError as e:
            raise ValidationError(f"cannot read {new_key_file}: {e}") from None
    settings = Settings.from_env(database_url=database_url)
    # the store's log lines go to stderr: stdout is the report
    configure_logging(settings, cache=False)
    report: Any = _run(rotate_secret_key(settings, new_key=new_key, batch=batch))
    out = {"resealed": report.resealed, "skipped": report.skipped, "key_id": report.key_id}
    if cli.json:
        print_json(out)
    else:
        click.echo(f"{report.resealed} secret(s) re-encrypted under key {report.key_id}")


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except FaenaError:
        raise
    except OSError as e:
        raise FaenaError(str(e)) from None


def _when(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
