"""``faena mcp``: serve faena to AI assistants over the Model Context Protocol."""

from __future__ import annotations

import click

from faena.cli.context import CliContext, pass_cli


@click.command("mcp")
@click.option(
    "--http",
    "http_port",
    type=click.IntRange(0, 65535),
    default=None,
    envvar="FAENA_MCP_HTTP",
    help="serve streamable HTTP on this port instead of stdio  [env: FAENA_MCP_HTTP]",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="FAENA_MCP_HOST",
    help="address for --http  [env: FAENA_MCP_HOST]",
)
@pass_cli
def mcp(cli: CliContext, http_port: int | None, host: str) -> None:
    """Serve faena as an MCP server (tools: submit_job, get_job, job_logs, list_jobs,
    run_workflow, get_run), acting with --api-key / FAENA_API_KEY on --server.

    \b
    stdio (default): an assistant starts `faena mcp` itself.
    --http PORT: streamable HTTP at http://HOST:PORT/mcp.
    """
    import anyio

    try:
        from faena.mcp_server import build_server
    except ImportError as e:  # pragma: no cover - the ai extra brings mcp
        raise click.ClickException("faena mcp needs the ai extra: pip install 'faena[ai]'") from e
    from faena.client import AsyncClient

    clients: list[AsyncClient] = []

    def client() -> AsyncClient:
        if not clients:  # made on the server's own event loop, at the first tool call
            clients.append(AsyncClient(cli.server, cli.api_key))
        return clients[0]

    server = build_server(client)

    async def serve() -> None:
        try:
            if http_port is None:
                await server.run_stdio_async()
            else:
                await server.run_streamable_http_async(host=host, port=http_port)
        finally:
            if clients:
                await clients[0].aclose()

    anyio.run(serve)
