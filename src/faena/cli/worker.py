"""``faena worker``: a remote worker agent that connects out to a server's worker protocol."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

import click

from faena.domain.errors import FaenaError

EXIT_REFUSED = 4  # as for a refused API key


def _labels(value: str | None) -> dict[str, str]:
    labels: dict[str, str] = {}
    for part in (value or "").split(","):
        if not part.strip():
            continue
        key, sep, val = part.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{part!r} is not KEY=VALUE", param_hint="--labels")
        labels[key.strip()] = val.strip()
    return labels


def _read(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as e:
        raise click.BadParameter(f"cannot read {path}: {e.strerror or e}") from None


@click.command()
@click.option(
    "--server",
    "address",
    required=True,
    metavar="HOST:PORT",
    help="the server's worker protocol address [FAENA_WORKER_SERVER]",
)
@click.option(
    "--token",
    required=True,
    metavar="TOKEN",
    help="a worker token ('faena workers token create') [FAENA_WORKER_TOKEN]",
)
@click.option(
    "--labels",
    default=None,
    metavar="K=V,...",
    help="labels jobs can require, e.g. region=eu,gpu=false [FAENA_WORKER_LABELS]",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 100_000),
    default=10,
    show_default=True,
    help="jobs run at once [FAENA_WORKER_CONCURRENCY]",
)
@click.option(
    "--import",
    "imports",
    multiple=True,
    metavar="MODULE",
    help="module with @faena.task functions (repeatable) [FAENA_WORKER_IMPORT]",
)
@click.option(
    "--allow-shell",
    is_flag=True,
    default=False,
    help="run the shell kind (off by default on remote workers)",
)
@click.option(
    "--tls-ca",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="verify the server's TLS certificate with this CA (PEM); enables TLS",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="this worker's certificate, for mutual TLS",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="this worker's private key, for mutual TLS",
)
@click.option("--worker-id", default=None, help="a stable id (default: HOST:PID:random)")
@click.option(
    "--cpu-cores",
    type=click.FloatRange(0, 4096),
    default=None,
    help="CPU cores offered to jobs' resources (default: the machine's)",
)
@click.option(
    "--memory-mb",
    type=click.IntRange(0),
    default=None,
    help="memory offered to jobs' resources (default: the machine's)",
)
@click.option(
    "--grace",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="seconds running jobs get to finish on SIGTERM before they are handed back",
)
@click.option(
    "--secret-env",
    "secret_env",
    multiple=True,
    metavar="NAME",
    help="also mask this environment variable's value in logs (repeatable)",
)
@click.option(
    "--report-cpu",
    type=click.FloatRange(0, 100),
    default=None,
    hidden=True,
    help="report this CPU percentage instead of the measured one (tests, demos)",
)
def worker(**kw: Any) -> None:
    """Run jobs placed by a faena server on this machine (connects out: works behind NAT).

    \b
    Secrets: the values of environment variables named like *TOKEN*, *SECRET*, *PASSWORD*,
    *API_KEY* (and --secret-env NAME) are replaced by **** in logs, results and errors.
    """
    from faena.bootstrap import configure_logging, import_task_modules
    from faena.config import Settings
    from faena.worker.agent import Agent, AgentConfig, Refused
    from faena.worker.executor import Executor
    from faena.worker.load import LoadProbe, machine_capacity
    from faena.worker.masking import secret_environment
    from faena.worker.registry import default_registry

    try:
        configure_logging(Settings.from_env())
        imports = tuple(m for arg in kw["imports"] for m in arg.split(",") if m)
        import_task_modules(imports)
    except FaenaError as e:
        click.echo(f"faena: {e.message}", err=True)
        sys.exit(2)
    if (kw["tls_cert"] is None) != (kw["tls_key"] is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    from faena import __version__

    config = AgentConfig(
        server=kw["address"],
        token=kw["token"],
        worker_id=kw["worker_id"] or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}",
        capacity=machine_capacity(kw["concurrency"], kw["cpu_cores"], kw["memory_mb"]),
        labels=_labels(kw["labels"]),
        tls_ca=_read(kw["tls_ca"]),
        tls_cert=_read(kw["tls_cert"]),
        tls_key=_read(kw["tls_key"]),
        secrets=secret_environment(os.environ, kw["secret_env"]),
        grace_s=kw["grace"],
        version=__version__,
    )
    from faena.bootstrap_mail import remote_mail_kinds

    handlers: dict[str, Any] = {}
    handlers.update(remote_mail_kinds(Settings.from_env()))  # email.send, notify.* (issue 9)
    from faena.bootstrap_documents import remote_document_kinds

    handlers.update(remote_document_kinds(Settings.from_env()))  # document.text, ocr (issue 9)
    executor = Executor(default_registry, allow_shell=kw["allow_shell"], handlers=handlers)
    from faena.observability.wiring import agent_telemetry

    telemetry = agent_telemetry(Settings.from_env().tracing, os.environ)
    agent = Agent(config, executor, probe=LoadProbe(kw["report_cpu"]), observer=telemetry)

    async def main() -> None:
        from faena.bootstrap import tune_gc

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: loop.create_task(agent.drain()))
        tune_gc(Settings.from_env().gc_threshold)
        try:
            await agent.run()
        finally:
            await executor.aclose()
            if telemetry.tracing is not None:
                telemetry.tracing.shutdown()  # export the last spans

    try:
        asyncio.run(main())
    except Refused as e:
        click.echo(f"faena: {' '.join(str(e).split())}", err=True)
        sys.exit(EXIT_REFUSED)
