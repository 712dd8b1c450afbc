"""The ``faena`` command: a click group with global ``--server``, ``--api-key`` and ``--json``.

Every flag also reads an environment variable (``FAENA_SERVER``, ``FAENA_API_KEY``,
``FAENA_JSON``, and ``FAENA_<COMMAND>_<FLAG>`` for the others); flags win. Errors end the
command with one line ``faena: <message>`` on stderr and the exit code of
:mod:`faena.cli.output`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from faena.cli.artefacts import artefacts
from faena.cli.context import CliContext
from faena.cli.jobs import jobs, submit
from faena.cli.keys import keys
from faena.cli.llm import llm
from faena.cli.mail import mail
from faena.cli.output import EXIT_OK, exit_code_for, fail
from faena.cli.secrets import secrets
from faena.cli.tenants import audit, tenants
from faena.cli.worker import worker
from faena.cli.workers import workers
from faena.domain.errors import FaenaError


class FaenaGroup(click.Group):
    """Runs a command and turns every error into one line on stderr and an exit code."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except FaenaError as e:
            fail(e.message, exit_code_for(e))
        except click.UsageError as e:
            hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
            fail(_one_line(e.format_message()) + hint, e.exit_code)
        except click.ClickException as e:
            fail(_one_line(e.format_message()), e.exit_code)
        except click.Abort:
            fail("aborted", 1)
        except BrokenPipeError:
            raise SystemExit(EXIT_OK) from None
        if isinstance(result, int) and not standalone_mode:
            return result
        raise SystemExit(result if isinstance(result, int) else EXIT_OK)


def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


@click.group(
    cls=FaenaGroup,
    context_settings={"auto_envvar_prefix": "FAENA", "help_option_names": ["-h", "--help"]},
)
@click.option(
    "--server",
    envvar="FAENA_SERVER",
    metavar="URL",
    help="faena server URL  [env: FAENA_SERVER; default: http://127.0.0.1:8000]",
)
@click.option(
    "--api-key",
    envvar="FAENA_API_KEY",
    metavar="KEY",
    help="API key  [env: FAENA_API_KEY; default: the key in $FAENA_HOME/admin.key]",
)
@click.option(
    "--json", "as_json", is_flag=True, envvar="FAENA_JSON", help="print JSON  [env: FAENA_JSON]"
)
@click.version_option(package_name="faena", prog_name="faena")
@click.pass_context
def main(ctx: click.Context, server: str | None, api_key: str | None, as_json: bool) -> None:
    """faena: durable jobs. Submit, follow and manage jobs on a faena server.

    \b
    Exit codes: 0 ok · 1 the operation or the job failed · 2 usage error
    3 server unreachable or unavailable · 4 API key refused · 5 --wait timed out
    """
    ctx.obj = CliContext(server=server, api_key=api_key, json=as_json)
    ctx.call_on_close(ctx.obj.close)


main.add_command(submit)
main.add_command(jobs)
main.add_command(keys)
main.add_command(tenants)
main.add_command(audit)
main.add_command(workers)
main.add_command(secrets)
main.add_command(artefacts)
main.add_command(mail)
main.add_command(llm)
main.add_command(worker)


def _add_workflow_commands() -> None:
    from faena.cli.workflows import workflow

    main.add_command(workflow)


_add_workflow_commands()


def _add_serve_commands() -> None:
    from faena.cli.serve import SERVE_COMMANDS

    for command in SERVE_COMMANDS:
        main.add_command(command)


_add_serve_commands()


def _add_mcp_command() -> None:
    from faena.cli.mcp import mcp  # imports the mcp SDK only when the command runs

    main.add_command(mcp)


_add_mcp_command()

__all__ = ["main"]
