"""``faena artefacts put FILE | get ID [-o FILE] | list | rm ID``: files jobs consume and produce.

Uploads and downloads are streamed; ``get`` without ``-o`` writes the bytes to stdout (so it
pipes), and refuses to when stdout is a terminal.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import click

from faena.cli.context import CliContext, json_option, pass_cli
from faena.cli.output import print_json, print_table
from faena.client import Client
from faena.client_artefacts import (
    delete_artefact,
    download_artefact,
    get_artefact,
    list_artefacts,
    put_artefact,
)
from faena.domain.errors import ValidationError


@click.group()
def artefacts() -> None:
    """Upload, download, list and delete artefacts (files for and from jobs)."""


@artefacts.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", metavar="NAME", help="the artefact's name (default: the file's)")
@click.option("--content-type", metavar="TYPE", help="default: guessed from the file name")
@json_option
@pass_cli
def put(cli: CliContext, file: Path, name: str | None, content_type: str | None) -> None:
    """Upload FILE and print the artefact's id."""
    found = put_artefact(cli.client(), file, name=name, content_type=content_type)
    if cli.json:
        print_json(found)
    else:
        click.echo(found["id"])
        click.echo(f"stored {found['name']} ({found['size']} bytes)", err=True)


@artefacts.command()
@click.argument("artefact_id", metavar="ID")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="write to this file (default: stdout)",
)  # fmt: skip
@click.option("--info", is_flag=True, help="print the metadata instead of the content")
@json_option
@pass_cli
def get(cli: CliContext, artefact_id: str, output: Path | None, info: bool) -> None:
    """Download artefact ID (to stdout, or -o FILE), or show its metadata with --info."""
    client = cli.client()
    if info:
        found = get_artefact(client, artefact_id)
        if cli.json:
            print_json(found)
        else:
            for key in ("id", "name", "content_type", "size", "sha256", "job_id"):
                click.echo(f"{key + ':':14}{found.get(key)}")
            click.echo(f"{'created:':14}{_when(found['created_at'])}")
        return
    if output is None:
        if sys.stdout.isatty():
            raise ValidationError("refusing to write binary content to a terminal: use -o FILE")
        download_artefact(client, artefact_id, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    n = _download_to(client, artefact_id, output)
    click.echo(f"wrote {n} bytes to {output}", err=True)


def _download_to(client: Client, artefact_id: str, output: Path) -> int:
    """Into a temporary file beside ``output``, renamed when complete: an error leaves no
    half-written file behind."""
    directory = output.parent if str(output.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{output.name}.")
    try:
        f: IO[bytes]
        with os.fdopen(fd, "wb") as f:
            n = download_artefact(client, artefact_id, f)
        os.replace(tmp, output)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return n


@artefacts.command("list")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--cursor", metavar="ID", help="continue after this artefact (next_cursor)")
@click.option("--job", "job_id", metavar="JOB", help="only the artefacts of this job")
@json_option
@pass_cli
def list_command(cli: CliContext, limit: int, cursor: str | None, job_id: str | None) -> None:
    """List your tenant's artefacts, newest first."""
    page = list_artefacts(cli.client(), limit=limit, cursor=cursor, job_id=job_id)
    if cli.json:
        print_json(page)
        return
    print_table(
        ["ID", "NAME", "TYPE", "SIZE", "CREATED"],
        [
            [a["id"], a["name"], a["content_type"], str(a["size"]), _when(a["created_at"])]
            for a in page["artefacts"]
        ],
    )
    if page["next_cursor"]:
        click.echo(f"more: --cursor {page['next_cursor']}", err=True)


@artefacts.command()
@click.argument("artefact_id", metavar="ID")
@pass_cli
def rm(cli: CliContext, artefact_id: str) -> None:
    """Delete artefact ID and its bytes."""
    delete_artefact(cli.client(), artefact_id)
    click.echo(f"deleted {artefact_id}", err=True)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
