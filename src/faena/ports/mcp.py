"""The MCP client port: what the ``agent`` kind needs from an MCP server — its tools, and a
way to call one. The adapter (:mod:`faena.adapters.mcp_client`) speaks the protocol with the
official ``mcp`` SDK over stdio or streamable HTTP."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from faena.domain.agents import McpServer


@dataclass(frozen=True, slots=True)
class McpTool:
    name: str
    description: str
    parameters: dict[str, Any]  # the tool's input JSON Schema


@dataclass(frozen=True, slots=True)
class McpCallResult:
    is_error: bool
    content: Any  # the structured result, or the text of its content blocks


class McpSession(Protocol):
    async def list_tools(self) -> list[McpTool]: ...

    async def call_tool(
        self, name: str, arguments: dict[str, Any], timeout_s: float
    ) -> McpCallResult: ...


class McpConnector(Protocol):
    def connect(self, server: McpServer) -> AbstractAsyncContextManager[McpSession]:
        """An initialized session for the agent's run; closing it stops a stdio server."""
        ...
