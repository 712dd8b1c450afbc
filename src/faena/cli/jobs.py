"""``faena submit`` and ``faena jobs list|show|logs|cancel|retry``."""

from __future__ import annotations

from typing import Any

import click

from faena.cli.context import CliContext, json_option, pass_cli
from faena.cli.output import (
    EXIT_FAILED,
    compact,
    fail,
    job_line,
    print_job_details,
    print_jobs_table,
    print_json,
    print_json_line,
    to_plain,
)
from faena.cli.params import JSON, LABEL, RESOURCES, SECONDS
from faena.client import Job, LogChunk

STATES = ("queued", "scheduled", "running", "succeeded", "failed", "cancelled")


@click.command()
@click.argument("kind")
@click.option("--payload", type=JSON, help="the job's input: JSON, @FILE or - for stdin")
@click.option("--queue", metavar="Q", help="queue (default: the kind's, else 'default')")
@click.option("--priority", type=int, default=0, show_default=True, help="higher runs first")
@click.option("--delay", type=SECONDS, metavar="S", help="start no sooner than S seconds from now")
@click.option("--retries", type=click.IntRange(min=0), metavar="N", help="retries after a failure")
@click.option("--timeout", type=SECONDS, metavar="S", help="seconds an attempt may run")
@click.option("--label", "labels", type=LABEL, multiple=True, help="a label a worker must offer")
@click.option("--idempotency-key", metavar="K", help="submit at most once per key")
@click.option(
    "--resources",
    type=RESOURCES,
    help="what an attempt needs of a worker: cpu=2,memory_mb=512",
)
@click.option("--wait", is_flag=True, help="wait for the job to finish and print its output")
@click.option(
    "--wait-timeout", type=SECONDS, metavar="S", help="with --wait: give up after S seconds"
)
@json_option
@pass_cli
def submit(
    cli: CliContext,
    *,
    kind: str,
    payload: Any,
    queue: str | None,
    priority: int,
    delay: float | None,
    retries: int | None,
    timeout: float | None,
    labels: tuple[tuple[str, str], ...],
    idempotency_key: str | None,
    resources: dict[str, float] | None,
    wait: bool,
    wait_timeout: float | None,
) -> None:
    """Submit a job of KIND.

    Prints the job's id, kind and state. With --wait, waits for the end and prints the job's
    output, its final state and its result; exits 1 if the job failed or was cancelled.
    """
    client = cli.client()
    handle = client.submit(
        kind,
        payload,
        queue=queue,
        priority=priority,
        labels=dict(labels),
        retries=retries,
        timeout=timeout,
        delay=delay,
        idempotency_key=idempotency_key,
        resources=resources,
    )
    if not wait:
        if cli.json:
            print_json(handle.job)
        else:
            click.echo(job_line(handle.job))
        return
    if not cli.json:
        click.echo(job_line(handle.job))
    job = handle.wait(wait_timeout)
    output = "".join(chunk.data for chunk in handle.logs())
    if cli.json:
        print_json({**to_plain(job), "logs": output})
    else:
        if output:
            click.echo(output, nl=not output.endswith("\n"))
        click.echo(f"state: {job.state}")
        if job.result is not None:
            click.echo(f"result: {compact(job.result)}")
    _fail_unless_succeeded(job)


def _fail_unless_succeeded(job: Job) -> None:
    if job.state == "succeeded":
        return
    reason = f": {job.error}" if job.error else ""
    fail(f"job {job.id} {job.state}{reason}", EXIT_FAILED)


@click.group()
def jobs() -> None:
    """List, inspect, follow, cancel and retry jobs."""


@jobs.command("list")
@click.option(
    "--state", "states", type=click.Choice(STATES), multiple=True, help="repeat for several"
)
@click.option("--queue", metavar="Q")
@click.option("--kind", metavar="K")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--cursor", metavar="C", help="the next_cursor of the previous page")
@click.option("--parent", metavar="ID", help="the children of this job (an agent's tool calls)")
@json_option
@pass_cli
def list_jobs(
    cli: CliContext,
    *,
    states: tuple[str, ...],
    queue: str | None,
    kind: str | None,
    limit: int,
    cursor: str | None,
    parent: str | None,
) -> None:
    """List jobs, newest first."""
    page = cli.client().list_jobs(
        state=states or None, queue=queue, kind=kind, limit=limit, cursor=cursor, parent_id=parent
    )
    if cli.json:
        print_json(page)
        return
    if not page.jobs:
        click.echo("no jobs", err=True)
        return
    print_jobs_table(page.jobs)
    if page.next_cursor:
        click.echo(f"more: --cursor {page.next_cursor}", err=True)


@jobs.command()
@click.argument("job_id", metavar="ID")
@json_option
@pass_cli
def show(cli: CliContext, job_id: str) -> None:
    """Show one job."""
    job = cli.client().get(job_id)
    if cli.json:
        print_json(job)
    else:
        print_job_details(job)


@jobs.command()
@click.argument("job_id", metavar="ID")
@click.option("--follow", "-f", is_flag=True, help="keep printing until the job is finished")
@json_option
@pass_cli
def logs(cli: CliContext, job_id: str, follow: bool) -> None:
    """Print a job's output (--json: one chunk per line)."""
    client = cli.client()
    chunks = client.follow_logs(job_id) if follow else iter(client.logs(job_id))
    for chunk in chunks:
        _print_chunk(cli, chunk)


def _print_chunk(cli: CliContext, chunk: LogChunk) -> None:
    if cli.json:
        print_json_line(chunk)
    else:
        click.echo(chunk.data, nl=False, err=chunk.stream == "stderr")


@jobs.command()
@click.argument("job_id", metavar="ID")
@json_option
@pass_cli
def cancel(cli: CliContext, job_id: str) -> None:
    """Cancel a queued, scheduled or running job."""
    _print_job(cli, cli.client().cancel(job_id))


@jobs.command()
@click.argument("job_id", metavar="ID")
@json_option
@pass_cli
def retry(cli: CliContext, job_id: str) -> None:
    """Queue a failed or cancelled job again."""
    _print_job(cli, cli.client().retry(job_id))


def _print_job(cli: CliContext, job: Job) -> None:
    if cli.json:
        print_json(job)
    else:
        click.echo(job_line(job))
