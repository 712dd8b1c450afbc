"""`faena up`, `faena server`, `faena db migrate`: the commands that run faena itself."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from faena.cli.ops import OPS_COMMANDS
from faena.domain.errors import FaenaError

UP_DEFAULT_WORKERS = 100


def _run(coro_factory: Callable[[], Any]) -> None:
    from faena.bootstrap import install_uvloop

    try:
        with asyncio.Runner(loop_factory=install_uvloop()) as runner:
            runner.run(coro_factory())
    except FaenaError as e:
        click.echo(f"faena: {e.message}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:  # a second Ctrl+C while draining
        sys.exit(130)


def _settings(**overrides: Any) -> Any:
    from faena.config import Settings

    try:
        return Settings.from_env(**overrides)
    except FaenaError as e:
        click.echo(f"faena: {e.message}", err=True)
        sys.exit(2)


def _serve_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--host", default=None, help="Interface to listen on [FAENA_HOST, 127.0.0.1]"),
        click.option(
            "--port", type=int, default=None, help="HTTP port, 0 for any free [FAENA_PORT, 8000]"
        ),
        click.option(
            "--grpc-port", type=int, default=None,
            help="Worker protocol (gRPC) port, 0 for any free [FAENA_GRPC_PORT, 50051]",
        ),
        click.option(
            "--tls-cert", type=click.Path(dir_okay=False, path_type=Path), default=None,
            help="TLS certificate (PEM) of the worker protocol [FAENA_TLS_CERT]",
        ),
        click.option(
            "--tls-key", type=click.Path(dir_okay=False, path_type=Path), default=None,
            help="TLS private key (PEM) of the worker protocol [FAENA_TLS_KEY]",
        ),
        click.option(
            "--tls-client-ca", type=click.Path(dir_okay=False, path_type=Path), default=None,
            help="Require worker certificates signed by this CA (mutual TLS) [FAENA_TLS_CLIENT_CA]",
        ),
        click.option(
            "--placement", default=None,
            help="Remote placement scorer: weighted, spread or bin-packing [FAENA_PLACEMENT]",
        ),
        click.option(
            "--workers", type=click.IntRange(0, 100_000), default=None,
            help="Slots of the local worker pool [FAENA_WORKERS]",
        ),
        click.option(
            "--import", "imports", multiple=True,
            help="Module with @faena.task functions (repeatable) [FAENA_IMPORT, comma-separated]",
        ),
        click.option(
            "--no-shell", is_flag=True, default=False,
            help="Refuse the shell kind in the local pool [FAENA_ALLOW_SHELL=false]",
        ),
        click.option("--database-url", default=None, help="Store URL [FAENA_DATABASE_URL]"),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _overrides(**kw: Any) -> dict[str, Any]:
    out = {k: v for k, v in kw.items() if v is not None and k not in {"imports", "no_shell"}}
    if kw.get("imports"):
        out["imports"] = tuple(m for arg in kw["imports"] for m in arg.split(",") if m)
    if kw.get("no_shell"):
        out["allow_shell"] = False
    return out


def _announce(title: str) -> Callable[[Any], None]:
    def announce(runtime: Any) -> None:
        s = runtime.settings
        url = f"http://{s.host}:{runtime.port}"
        lines = [
            f"faena is up ({title})",
            f"  API        {url}   docs: {url}/docs",
            f"  database   {s.database_url}",
        ]
        if runtime.pool is not None:
            kinds = ", ".join(sorted(runtime.executor.kinds()))
            lines.append(f"  workers    {s.workers} local slots; kinds: {kinds}")
        else:
            lines.append("  workers    no local pool (--workers N to add one)")
        plane = getattr(runtime, "workers_plane", None)
        if plane is not None and plane.grpc_port:
            secure = "TLS" if plane.tls else "plaintext"
            lines.append(
                f"  grpc       {s.host}:{plane.grpc_port} ({secure})   remote workers: "
                f"faena worker --server {s.host}:{plane.grpc_port} --token TOKEN"
            )
        if runtime.bootstrap_key is not None:
            where = (
                "from FAENA_BOOTSTRAP_KEY"
                if s.bootstrap_key
                else f"saved to {s.home / 'admin.key'}; shown once"
            )
            lines.append(f"  admin key  {runtime.bootstrap_key.plaintext}   ({where})")
        lines.append("Press Ctrl+C to stop.")
        click.echo("\n".join(lines))
        sys.stdout.flush()

    return announce


@click.command()
@_serve_options
def up(**kw: Any) -> None:
    """Run everything in one process: API, scheduler, local worker pool, embedded SQLite."""
    settings = _settings(defaults={"workers": UP_DEFAULT_WORKERS}, **_overrides(**kw))
    _start(settings, "embedded")


@click.command()
@_serve_options
def server(**kw: Any) -> None:
    """Run the API and scheduler (and a local pool with --workers N) for a shared database."""
    _start(_settings(**_overrides(**kw)), "server")


def _start(settings: Any, title: str) -> None:
    from faena.bootstrap import configure_logging, serve

    configure_logging(settings)
    _run(lambda: serve(settings, _announce(title)))


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command()
@click.option("--database-url", default=None, help="Store URL [FAENA_DATABASE_URL]")
def migrate(database_url: str | None) -> None:
    """Apply pending migrations and print the schema version."""
    from faena.bootstrap import configure_logging

    settings = _settings(database_url=database_url)
    # the store's log lines go to stderr: stdout is the report
    configure_logging(settings, cache=False)

    async def go() -> None:
        from faena.bootstrap import open_store

        store = open_store(settings)
        await store.open()
        try:
            version = await store.schema_version()
        finally:
            await store.close()
        click.echo(f"schema at version {version} ({settings.database_url})")

    _run(go)


SERVE_COMMANDS = (up, server, db, *OPS_COMMANDS)
