"""``faena mail watch add|list|show|remove|messages``: mailbox watches, through the API
(scopes ``workflows:write`` / ``workflows:read``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from faena.cli.context import CliContext, json_option, pass_cli
from faena.cli.output import print_json, print_table
from faena.domain.errors import ValidationError


@click.group()
def mail() -> None:
    """Mailbox watches: new messages start workflows."""


@mail.group()
def watch() -> None:
    """Add, list, show and remove mailbox watches."""


def _spec_from_file(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ValidationError(f"cannot read {path}: {e}") from None
    if not isinstance(loaded, dict):
        raise ValidationError(f"{path} must hold one watch (a mapping)")
    return loaded


@watch.command("add")
@click.argument("name")
@click.option("--host", help="IMAP server host name")
@click.option("--port", type=click.IntRange(1, 65535), help="default 993 (ssl) or 143")
@click.option(
    "--security", type=click.Choice(["ssl", "starttls", "none"]), help="default ssl (IMAPS)"
)
@click.option("--username", help="the mailbox login")
@click.option("--password-secret", metavar="NAME", help="the secret holding the password")
@click.option("--folder", help="default INBOX")
@click.option("--workflow", help="the workflow each message starts (input 'message')")
@click.option("--move-to", metavar="FOLDER", help="move handled messages there (else: flag)")
@click.option("--flag", help="flag set on handled messages (default \\Seen)")
@click.option("--park-folder", metavar="FOLDER", help="move unreadable messages there")
@click.option("--poll", "poll_s", type=click.FloatRange(0.05, 3600), help="seconds between polls")
@click.option("--no-idle", is_flag=True, help="poll even when the server supports IDLE")
@click.option("--ca-file", type=click.Path(dir_okay=False), help="CA bundle for the server")
@click.option(
    "--file", "from_file", type=click.Path(dir_okay=False, path_type=Path),
    help="a YAML/JSON file with the watch (rules and all); flags given here override it",
)  # fmt: skip
@json_option
@pass_cli
def add(cli: CliContext, /, name: str, from_file: Path | None, no_idle: bool, **flags: Any) -> None:
    """Watch a mailbox as NAME."""
    spec = _spec_from_file(from_file) if from_file is not None else {}
    spec["name"] = name
    spec.update({k: v for k, v in flags.items() if v is not None})
    if flags.get("move_to"):
        spec["action"] = "move"
    if no_idle:
        spec["idle"] = False
    found = cli.client().add_mail_watch(spec)
    if cli.json:
        print_json(found)
    else:
        click.echo(f"watching {found['username']}@{found['host']}/{found['folder']} as {name}")


@watch.command("list")
@json_option
@pass_cli
def list_watches(cli: CliContext) -> None:
    """List your tenant's watches with their progress."""
    found = cli.client().list_mail_watches()
    if cli.json:
        print_json({"watches": found})
        return
    rows = [
        [
            w["name"],
            f"{w['username']}@{w['host']}:{w['port']}/{w['folder']}",
            w["workflow"] or "(rules)",
            str(w["state"]["processed"]),
            str(w["state"]["parked"]),
            w["state"]["last_error"] or "",
        ]
        for w in found
    ]
    print_table(["NAME", "MAILBOX", "WORKFLOW", "PROCESSED", "PARKED", "LAST ERROR"], rows)


@watch.command("show")
@click.argument("name")
@json_option
@pass_cli
def show(cli: CliContext, name: str) -> None:
    """A watch's definition and progress."""
    found = cli.client().get_mail_watch(name)
    if cli.json:
        print_json(found)
    else:
        click.echo(yaml.safe_dump(found, sort_keys=False).rstrip())


@watch.command("remove")
@click.argument("name")
@pass_cli
def remove(cli: CliContext, name: str) -> None:
    """Stop watching (the mailbox is left as it is)."""
    cli.client().remove_mail_watch(name)
    click.echo(f"removed mail watch {name}")


@watch.command("messages")
@click.argument("name")
@click.option("--state", type=click.Choice(["ingested", "parked", "skipped"]))
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@json_option
@pass_cli
def messages(cli: CliContext, name: str, state: str | None, limit: int) -> None:
    """What became of the watch's messages, newest first (parked ones with their reason)."""
    found = cli.client().mail_messages(name, state=state, limit=limit)
    if cli.json:
        print_json({"messages": found})
        return
    rows = [
        [str(m["uid"]), m["state"], m["run_id"] or "", m["subject"] or "", m["reason"] or ""]
        for m in found
    ]
    print_table(["UID", "STATE", "RUN", "SUBJECT", "REASON"], rows)
