"""MCP client sessions with the official ``mcp`` SDK: stdio (a server process started for the
agent's run and stopped after it) or streamable HTTP."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from faena.domain.agents import McpServer
from faena.domain.errors import Unavailable
from faena.ports.mcp import McpCallResult, McpSession, McpTool


class McpUnavailable(Unavailable):
    code = "mcp_unavailable"


class _Session:
    def __init__(self, session: Any) -> None:
        self._session = session

    async def list_tools(self) -> list[McpTool]:
        from mcp.types import PaginatedRequestParams

        tools: list[McpTool] = []
        cursor: str | None = None
        for _ in range(100):  # pages; a server that never ends its list cannot hang the agent
            params = PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await self._session.list_tools(params=params)
            for tool in page.tools:
                schema = dict(tool.input_schema or {"type": "object"})
                tools.append(McpTool(tool.name, tool.description or "", schema))
            cursor = getattr(page, "next_cursor", None)
            if not cursor:
                break
        return tools

    async def call_tool(
        self, name: str, arguments: dict[str, Any], timeout_s: float
    ) -> McpCallResult:
        result = await self._session.call_tool(name, arguments, read_timeout_seconds=timeout_s)
        structured = getattr(result, "structured_content", None)
        if structured is not None:
            content: Any = structured
        else:
            texts = [getattr(block, "text", None) for block in result.content]
            content = "\n".join(t for t in texts if t is not None)
        return McpCallResult(bool(result.is_error), content)


class SdkMcpConnector:
    """Connects with ``mcp.ClientSession`` over the server's transport."""

    @asynccontextmanager
    async def connect(self, server: McpServer) -> AsyncIterator[McpSession]:
        try:
            from mcp import ClientSession, StdioServerParameters, stdio_client
            from mcp.client.streamable_http import streamable_http_client
        except ImportError as exc:  # pragma: no cover - the ai extra brings it
            raise McpUnavailable("MCP needs the ai extra: pip install 'faena[ai]'") from exc
        async with AsyncExitStack() as stack:
            if server.url is not None:
                http_client = None
                if server.headers:
                    import httpx2

                    http_client = await stack.enter_async_context(
                        httpx2.AsyncClient(headers=dict(server.headers), timeout=30.0)
                    )
                read, write = await stack.enter_async_context(
                    streamable_http_client(server.url, http_client=http_client)
                )
            else:
                params = StdioServerParameters(
                    command=server.command[0],
                    args=list(server.command[1:]),
                    env={"PATH": os.environ.get("PATH", ""), **dict(server.env or {})},
                )
                devnull = stack.enter_context(open(os.devnull, "w"))  # noqa: SIM115, ASYNC230
                read, write = await stack.enter_async_context(stdio_client(params, devnull))
            session = await stack.enter_async_context(ClientSession(read, write))
            await session.initialize()
            yield _Session(session)
