"""`faena backup FILE` and `faena restore FILE`: a verified copy of the store, and back.

Thin: the store comes from ``--database-url`` / ``FAENA_DATABASE_URL`` as for ``faena db
migrate``; the work is done by the store's backup adapter, chosen by the composition root.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click

from faena.domain.errors import FaenaError
from faena.ports.backup import BackupReport

_DATABASE_URL = click.option("--database-url", default=None, help="Store URL [FAENA_DATABASE_URL]")


def _settings(database_url: str | None) -> Any:
    from faena.bootstrap import configure_logging
    from faena.config import Settings

    try:
        settings = Settings.from_env(database_url=database_url)
    except FaenaError as e:
        click.echo(f"faena: {e.message}", err=True)
        sys.exit(2)
    # the store's log lines go to stderr: stdout is the report
    configure_logging(settings, cache=False)
    return settings


def _report(make: Callable[[], Coroutine[Any, Any, BackupReport]]) -> BackupReport:
    try:
        return asyncio.run(make())
    except FaenaError as e:
        click.echo(f"faena: {e.message}", err=True)
        sys.exit(1)


def _redacted(url: str) -> str:
    """The URL without its password, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@_DATABASE_URL
def backup(file: Path, force: bool, database_url: str | None) -> None:
    """Write a consistent, verified backup of the store to FILE (faena may keep running).

    SQLite: an online copy checked with PRAGMA integrity_check. PostgreSQL: pg_dump -Fc,
    read back in full and counted, with FILE.manifest.json next to it.
    """
    settings = _settings(database_url)
    from faena.bootstrap import backup_store

    report = _report(lambda: backup_store(settings, file, overwrite=force))
    extra = "".join(f" + {p.name}" for p in report.extra_files)
    click.echo(
        f"backup written to {report.path}{extra} ({_size(report.size_bytes)}, "
        f"{report.jobs} jobs, {sum(report.tables.values())} rows in {len(report.tables)} "
        f"tables, integrity ok, {report.seconds:.1f}s)"
    )


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace a database that already holds jobs or keys.")
@_DATABASE_URL
def restore(file: Path, force: bool, database_url: str | None) -> None:
    """Replace the store's contents with the backup in FILE (stop faena first).

    Refuses while faena is using the database and, without --force, when the database already
    holds jobs or API keys. The backup is verified before anything is changed.
    """
    settings = _settings(database_url)
    from faena.bootstrap import restore_store

    report = _report(lambda: restore_store(settings, file, force=force))
    click.echo(
        f"restored {report.path} into {_redacted(settings.database_url)} ({report.jobs} jobs, "
        f"{sum(report.tables.values())} rows in {len(report.tables)} tables, "
        f"integrity ok, {report.seconds:.1f}s)"
    )


OPS_COMMANDS = (backup, restore)
