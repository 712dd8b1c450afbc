"""``faena workflow apply|list|run|runs|show|cancel|retry|pause|resume``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
import httpx

from faena.cli.context import CliContext, json_option, pass_cli
from faena.cli.output import EXIT_FAILED, EXIT_TIMEOUT, compact, fail, print_json, print_table
from faena.cli.params import JSON, SECONDS
from faena.client import Client
from faena.client_models import decode, unreachable

RUN_STATES = ("running", "succeeded", "failed", "cancelled")
LONG_POLL_S = 30.0


def _call(client: Client, method: str, path: str, **kwargs: Any) -> Any:
    """A workflow API call through the CLI's client (its server, key and error mapping)."""
    try:
        response = client._http.request(method, path, **kwargs)
    except httpx.TransportError as e:
        raise unreachable(e, client.server, client.timeout) from None
    return decode(response, client.server)


def _wait(client: Client, run: dict[str, Any], timeout: float | None) -> dict[str, Any]:
    deadline = None if timeout is None else time.monotonic() + timeout
    while run["state"] == "running":
        left = LONG_POLL_S if deadline is None else deadline - time.monotonic()
        if left <= 0:
            fail(f"run {run['id']} is still running after {timeout:g}s", EXIT_TIMEOUT)
        run = _call(
            client,
            "GET",
            f"/v1/runs/{run['id']}",
            params={"wait": max(1, min(LONG_POLL_S, int(left)))},
            timeout=LONG_POLL_S + 10,
        )
    return run


def _print_run(run: dict[str, Any]) -> None:
    click.echo(f"run {run['id']}  {run['workflow']} v{run['version']}  {run['state']}")
    rows = []
    for step in run["steps"]:
        output = "" if step["output"] is None else compact(step["output"])
        if len(output) > 60:
            output = output[:57] + "..."
        rows.append([step["id"], step["state"], str(step["attempts"]), step["error"] or output])
    print_table(["STEP", "STATE", "ATTEMPTS", "OUTPUT / ERROR"], rows)
    if run.get("error"):
        click.echo(f"error: {run['error']}")


def _finish(cli: CliContext, run: dict[str, Any]) -> None:
    if cli.json:
        print_json(run)
    else:
        _print_run(run)
    if run["state"] in ("failed", "cancelled"):
        fail(f"run {run['id']} {run['state']}: {run.get('error') or ''}".rstrip(": "), EXIT_FAILED)


@click.group()
def workflow() -> None:
    """Apply workflows, start runs and follow them."""


@workflow.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path, allow_dash=True))
@click.option("--name", help="the workflow's name (default: the file's 'name')")
@json_option
@pass_cli
def apply(cli: CliContext, *, file: Path, name: str | None) -> None:
    """Validate FILE (YAML or JSON) and store it as the workflow's next version."""
    text = sys.stdin.read() if str(file) == "-" else _read(file)
    if name is None:
        from faena.domain.workflows import load_yaml

        document = load_yaml(text)
        name = document.get("name") if isinstance(document, dict) else None
        if not isinstance(name, str):
            fail("the workflow has no 'name'; give one with --name", 2)
    result = _call(
        cli.client(),
        "PUT",
        f"/v1/workflows/{name}",
        content=text.encode(),
        headers={"Content-Type": "application/yaml"},
    )
    if cli.json:
        print_json(result)
    else:
        what = "applied" if result["created"] else "unchanged"
        click.echo(f"workflow {result['name']} version {result['version']} ({what})")


def _read(file: Path) -> str:
    try:
        return file.read_text("utf-8")
    except OSError as e:
        fail(f"cannot read {file}: {e.strerror or e}", 2)


@workflow.command("list")
@json_option
@pass_cli
def list_workflows(cli: CliContext) -> None:
    """The workflows of your tenant."""
    found = _call(cli.client(), "GET", "/v1/workflows")["workflows"]
    if cli.json:
        print_json(found)
        return
    print_table(
        ["NAME", "VERSION", "UPDATED"],
        [[w["name"], str(w["latest_version"]), w["updated_at"]] for w in found],
    )


@workflow.command()
@click.argument("name")
@click.option("--input", "inputs", type=JSON, help="the run's inputs: JSON, @FILE or -")
@click.option("--version", type=click.IntRange(min=1), help="a version (default: the latest)")
@click.option("--idempotency-key", metavar="K", help="start at most one run per key")
@click.option("--wait", is_flag=True, help="wait for the run to finish and print its steps")
@click.option("--wait-timeout", type=SECONDS, metavar="S", help="with --wait: give up after S")
@json_option
@pass_cli
def run(
    cli: CliContext,
    *,
    name: str,
    inputs: Any,
    version: int | None,
    idempotency_key: str | None,
    wait: bool,
    wait_timeout: float | None,
) -> None:
    """Start a run of workflow NAME. With --wait, exit 1 unless it succeeds."""
    body: dict[str, Any] = {"inputs": inputs or {}}
    if version is not None:
        body["version"] = version
    if idempotency_key is not None:
        body["idempotency_key"] = idempotency_key
    client = cli.client()
    started = _call(client, "POST", f"/v1/workflows/{name}/runs", json=body)
    if not wait:
        if cli.json:
            print_json(started)
        else:
            click.echo(f"{started['id']}  {started['workflow']}  {started['state']}")
        return
    _finish(cli, _wait(client, started, wait_timeout))


@workflow.command()
@click.option("--workflow", "name", metavar="NAME", help="only runs of this workflow")
@click.option("--state", "states", type=click.Choice(RUN_STATES), multiple=True)
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--cursor", metavar="C", help="the next_cursor of the previous page")
@json_option
@pass_cli
def runs(
    cli: CliContext, *, name: str | None, states: tuple[str, ...], limit: int, cursor: str | None
) -> None:
    """List runs, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if name:
        params["workflow"] = name
    if states:
        params["state"] = ",".join(states)
    if cursor:
        params["cursor"] = cursor
    page = _call(cli.client(), "GET", "/v1/runs", params=params)
    if cli.json:
        print_json(page)
        return
    print_table(
        ["ID", "WORKFLOW", "VERSION", "STATE", "CREATED"],
        [
            [r["id"], r["workflow"], str(r["version"]), r["state"], r["created_at"]]
            for r in page["runs"]
        ],
    )


@workflow.command()
@click.argument("run_id")
@click.option("--wait", is_flag=True, help="wait for the run to finish")
@json_option
@pass_cli
def show(cli: CliContext, *, run_id: str, wait: bool) -> None:
    """A run with each step's state, attempts and output."""
    found = _call(cli.client(), "GET", f"/v1/runs/{run_id}")
    if wait:
        found = _wait(cli.client(), found, None)
    if cli.json:
        print_json(found)
    else:
        _print_run(found)


@workflow.command()
@click.argument("run_id")
@json_option
@pass_cli
def cancel(cli: CliContext, *, run_id: str) -> None:
    """Cancel a run and its running steps."""
    found = _call(cli.client(), "POST", f"/v1/runs/{run_id}/cancel")
    print_json(found) if cli.json else click.echo(f"{found['id']}  {found['state']}")


@workflow.command()
@click.argument("run_id")
@json_option
@pass_cli
def retry(cli: CliContext, *, run_id: str) -> None:
    """Re-run a failed or cancelled run from its unfinished steps."""
    found = _call(cli.client(), "POST", f"/v1/runs/{run_id}/retry")
    print_json(found) if cli.json else click.echo(f"{found['id']}  {found['state']}")


@workflow.command()
@click.argument("name")
@json_option
@pass_cli
def pause(cli: CliContext, *, name: str) -> None:
    """Pause the workflow's cron schedule."""
    found = _call(cli.client(), "POST", f"/v1/workflows/{name}/pause")
    print_json(found) if cli.json else click.echo(f"{name}: paused")


@workflow.command()
@click.argument("name")
@json_option
@pass_cli
def resume(cli: CliContext, *, name: str) -> None:
    """Resume the workflow's cron schedule (missed ticks are skipped)."""
    found = _call(cli.client(), "POST", f"/v1/workflows/{name}/resume")
    print_json(found) if cli.json else click.echo(f"{name}: next tick {found['next_fire_at']}")
