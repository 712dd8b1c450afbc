"""What every command receives: the global options and a client made on first use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from faena.client import Client

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliContext:
    server: str | None = None
    api_key: str | None = None
    json: bool = False
    _client: Client | None = field(default=None, repr=False)

    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.server, self.api_key)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


pass_cli = click.make_pass_decorator(CliContext)


def json_option(fn: F) -> F:
    """``--json`` on a command too (``faena jobs list --json``), same as the global flag."""

    def enable(ctx: click.Context, _: click.Parameter, value: bool) -> None:
        if value:
            ctx.ensure_object(CliContext).json = True

    return click.option(
        "--json",
        "json_",
        is_flag=True,
        envvar="FAENA_JSON",
        expose_value=False,
        callback=enable,
        help="print JSON for machines",
    )(fn)
