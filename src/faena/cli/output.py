"""How commands print: JSON for machines, short tables and lines for people, and one line on
stderr with a documented exit code for every error."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NoReturn

import click
import orjson

from faena.client import ApiKeyInfo, Job, WaitTimeout
from faena.domain import errors

EXIT_OK = 0
EXIT_FAILED = 1  # the operation was refused or the job failed / was cancelled
EXIT_USAGE = 2  # bad flags or flag values (click's own code for usage errors)
EXIT_UNAVAILABLE = 3  # the server cannot be reached or is not ready
EXIT_AUTH = 4  # the API key is missing, wrong, revoked, or lacks a scope
EXIT_TIMEOUT = 5  # --wait-timeout passed before the job finished


def exit_code_for(error: errors.FaenaError) -> int:
    if isinstance(error, errors.Unavailable):
        return EXIT_UNAVAILABLE
    if isinstance(error, errors.Unauthorized | errors.Forbidden):
        return EXIT_AUTH
    if isinstance(error, WaitTimeout):
        return EXIT_TIMEOUT
    return EXIT_FAILED


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    click.echo(f"faena: {message}", err=True)
    sys.exit(code)


def _default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    raise TypeError


def to_plain(value: Any) -> Any:
    """Dataclasses as dicts, datetimes as ISO 8601 strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value


def print_json(value: Any) -> None:
    click.echo(orjson.dumps(to_plain(value), option=orjson.OPT_INDENT_2, default=_default))


def print_json_line(value: Any) -> None:
    click.echo(orjson.dumps(to_plain(value), default=_default))


def short_time(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def compact(value: Any) -> str:
    return orjson.dumps(value).decode()


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    for row in (headers, *rows):
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def job_line(job: Job) -> str:
    return f"{job.id}  {job.kind}  {job.state}"


def print_job_details(job: Job) -> None:
    fields: list[tuple[str, Any]] = [
        ("id", job.id),
        ("kind", job.kind),
        ("state", job.state),
        ("queue", job.queue),
        ("tenant", job.tenant),
        ("priority", job.priority),
        ("attempts", f"{job.attempts}/{job.max_attempts}"),
        ("labels", compact(job.labels) if job.labels else None),
        ("payload", compact(job.payload)),
        ("result", None if job.result is None else compact(job.result)),
        ("error", job.error),
        ("worker", job.worker_id),
        ("created", short_time(job.created_at)),
        ("run at", short_time(job.run_at) if job.run_at else None),
        ("started", short_time(job.started_at) if job.started_at else None),
        ("finished", short_time(job.finished_at) if job.finished_at else None),
        ("timeout", f"{job.timeout_s:g}s" if job.timeout_s else None),
        ("idempotency key", job.idempotency_key),
        ("concurrency key", job.concurrency_key),
        ("parent", job.parent_id),
    ]
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        if value is not None:
            click.echo(f"{name.ljust(width)}  {value}")


def print_jobs_table(jobs: Sequence[Job]) -> None:
    print_table(
        ["ID", "KIND", "QUEUE", "STATE", "ATTEMPTS", "CREATED"],
        [
            [
                j.id,
                j.kind,
                j.queue,
                j.state,
                f"{j.attempts}/{j.max_attempts}",
                short_time(j.created_at),
            ]
            for j in jobs
        ],
    )


def print_keys_table(keys: Sequence[ApiKeyInfo]) -> None:
    print_table(
        ["ID", "NAME", "PREFIX", "SCOPES", "TENANT", "CREATED", "EXPIRES", "REVOKED"],
        [
            [
                k.id,
                k.name,
                k.prefix,
                ",".join(k.scopes),
                k.tenant,
                short_time(k.created_at),
                short_time(k.expires_at),
                short_time(k.revoked_at),
            ]
            for k in keys
        ],
    )
