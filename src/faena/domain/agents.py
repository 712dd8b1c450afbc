"""The ``agent`` kind's vocabulary: its payload, its tools and their JSON Schemas. Pure.

An agent is a tool-calling loop: the model is asked, each tool call it makes runs as a child
job (a faena kind or ``@faena.task``) or as a call on an MCP server, the results go back to the
model, until it answers or a limit (steps, cost, time) stops it.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from faena.domain.errors import ValidationError

KIND = "agent"
MAX_STEPS = 100
MAX_TOOLS = 128
MAX_TIME_LIMIT_S = 24 * 3600.0
FORBIDDEN_TOOLS = frozenset({"shell", KIND})  # code-running kinds; no agent inside an agent
_SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


@dataclass(frozen=True, slots=True)
class KindTool:
    """A faena kind offered to the model; each call is a child job of that kind."""

    kind: str
    description: str = ""
    parameters: Mapping[str, Any] | None = None  # None: derived from the task's signature


@dataclass(frozen=True, slots=True)
class McpServer:
    """An MCP server whose tools the agent may call: a command to start (stdio) or the URL of
    a streamable-HTTP endpoint. ``tools`` restricts which of its tools are offered."""

    name: str
    command: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None
    url: str | None = None
    headers: Mapping[str, str] | None = None
    tools: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class AgentSpec:
    prompt: str
    system: str | None = None
    model: str | None = None
    policy: str | None = None
    temperature: float | None = None
    tools: tuple[KindTool, ...] = ()
    mcp: tuple[McpServer, ...] = ()
    max_steps: int = 10
    max_cost: float | None = None
    time_limit_s: float = 300.0
    tool_timeout_s: float = 120.0
    tool_queue: str | None = None  # where tool jobs go; None: each kind's default


def tool_name(kind: str) -> str:
    """The name the model sees: ``email.send`` → ``email_send`` (dots are not allowed)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", kind)[:64]


def mcp_tool_name(server: str, tool: str) -> str:
    return tool_name(f"{server}__{tool}")


def parse_agent_payload(payload: Any) -> AgentSpec:
    """The payload as an :class:`AgentSpec`, or a ValidationError naming the bad field."""
    if not isinstance(payload, dict):
        raise ValidationError("an agent payload is an object with at least a prompt")
    known = {
        "prompt",
        "system",
        "model",
        "policy",
        "temperature",
        "tools",
        "mcp",
        "max_steps",
        "max_cost",
        "time_limit_s",
        "tool_timeout_s",
        "tool_queue",
    }
    unknown = sorted(set(payload) - known)
    if unknown:
        raise ValidationError(f"unknown agent field {unknown[0]!r}")
    prompt = payload.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValidationError("agent prompt must be a non-empty string")
    spec = AgentSpec(
        prompt=prompt,
        system=opt_str(payload, "system"),
        model=opt_str(payload, "model"),
        policy=opt_str(payload, "policy"),
        temperature=opt_number(payload, "temperature", 0, 2),
        tools=tuple(kind_tool(t, i) for i, t in enumerate(_list(payload, "tools"))),
        mcp=tuple(_mcp_server(s, i) for i, s in enumerate(_list(payload, "mcp"))),
        max_steps=int(opt_number(payload, "max_steps", 1, MAX_STEPS, integer=True) or 10),
        max_cost=opt_number(payload, "max_cost", 0, 1e6),
        time_limit_s=opt_number(payload, "time_limit_s", 0.1, MAX_TIME_LIMIT_S) or 300.0,
        tool_timeout_s=opt_number(payload, "tool_timeout_s", 0.1, MAX_TIME_LIMIT_S) or 120.0,
        tool_queue=opt_str(payload, "tool_queue"),
    )
    if len(spec.tools) > MAX_TOOLS:
        raise ValidationError(f"an agent has at most {MAX_TOOLS} tools")
    names = [tool_name(t.kind) for t in spec.tools]
    if len(set(names)) != len(names):
        raise ValidationError("two agent tools have the same name once dots become _")
    servers = [s.name for s in spec.mcp]
    if len(set(servers)) != len(servers):
        raise ValidationError("two MCP servers have the same name")
    return spec


def _list(payload: dict[str, Any], key: str) -> list[Any]:
    value = payload.get(key, [])
    if not isinstance(value, list):
        raise ValidationError(f"agent {key} must be a list")
    return value


def opt_str(payload: dict[str, Any], key: str, *, what: str = KIND) -> str | None:
    """``payload[key]`` of a ``what`` payload: absent, or a non-empty string."""
    value = payload.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise ValidationError(f"{what} {key} must be a non-empty string")
    return value


def opt_number(
    payload: dict[str, Any],
    key: str,
    low: float,
    high: float,
    *,
    integer: bool = False,
    what: str = KIND,
) -> float | None:
    """``payload[key]`` of a ``what`` payload: absent, or a number in ``[low, high]``."""
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise ValidationError(f"{what} {key} must be {'an integer' if integer else 'a number'}")
    if not low <= value <= high:
        raise ValidationError(f"{what} {key} must be between {low:g} and {high:g}")
    return float(value)


def kind_tool(
    raw: Any, i: int, *, what: str = KIND, forbidden: frozenset[str] = FORBIDDEN_TOOLS
) -> KindTool:
    """``tools[i]`` of a ``what`` payload (the ``agent`` kind's, or another tool-calling
    kind's): a kind name or ``{kind, description, parameters}``, not one of ``forbidden``."""
    if isinstance(raw, str):
        raw = {"kind": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str) or not raw["kind"]:
        raise ValidationError(f"{what} tools[{i}] must be a kind name or {{kind, ...}}")
    unknown = sorted(set(raw) - {"kind", "description", "parameters"})
    if unknown:
        raise ValidationError(f"{what} tools[{i}]: unknown field {unknown[0]!r}")
    kind = raw["kind"]
    if kind in forbidden:
        raise ValidationError(f"{what} tools[{i}]: {kind!r} cannot be an {what} tool")
    parameters = raw.get("parameters")
    if parameters is not None and (
        not isinstance(parameters, dict) or parameters.get("type", "object") != "object"
    ):
        raise ValidationError(f"{what} tools[{i}].parameters must be a JSON Schema object")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ValidationError(f"{what} tools[{i}].description must be a string")
    return KindTool(kind, description, parameters)


def _mcp_server(raw: Any, i: int) -> McpServer:
    where = f"agent mcp[{i}]"
    if not isinstance(raw, dict):
        raise ValidationError(f"{where} must be an object with a name and a command or url")
    unknown = sorted(set(raw) - {"name", "command", "env", "url", "headers", "tools"})
    if unknown:
        raise ValidationError(f"{where}: unknown field {unknown[0]!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not _SERVER_NAME.match(name):
        raise ValidationError(f"{where}.name must be 1 to 32 letters, digits, _ or -")
    command, url = raw.get("command"), raw.get("url")
    if (command is None) == (url is None):
        raise ValidationError(f"{where} needs exactly one of command (stdio) and url (http)")
    if command is not None and (
        not isinstance(command, list)
        or not command
        or not all(isinstance(c, str) and c for c in command)
    ):
        raise ValidationError(f"{where}.command must be a non-empty list of strings")
    if url is not None and (
        not isinstance(url, str) or not url.startswith(("http://", "https://"))
    ):
        raise ValidationError(f"{where}.url must be an http(s) URL")
    env, headers, tools = raw.get("env"), raw.get("headers"), raw.get("tools")
    for key, value in (("env", env), ("headers", headers)):
        if value is not None and (
            not isinstance(value, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        ):
            raise ValidationError(f"{where}.{key} must map strings to strings")
    if tools is not None and (
        not isinstance(tools, list) or not all(isinstance(t, str) for t in tools)
    ):
        raise ValidationError(f"{where}.tools must be a list of tool names")
    return McpServer(
        name=name,
        command=tuple(command or ()),
        env=env,
        url=url,
        headers=headers,
        tools=None if tools is None else tuple(tools),
    )


# -- JSON Schema of a @faena.task's arguments -------------------------------------------------

_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    bytes: {"type": "string"},
    type(None): {"type": "null"},
    Any: {},
}


def schema_of(fn: Callable[..., Any]) -> dict[str, Any]:
    """The JSON Schema of a task's keyword arguments, from its signature and annotations
    (unknown annotations become "any value"), so the model knows how to call it."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            continue
        properties[name] = _type_schema(hints.get(name, Any))
        if param.default is param.empty:
            required.append(name)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _type_schema(tp: Any) -> dict[str, Any]:
    if tp in _SCALARS:
        return dict(_SCALARS[tp])
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (list, tuple, set, frozenset) or tp in (list, tuple, set):
        items = _type_schema(args[0]) if args else {}
        return {"type": "array", "items": items}
    if origin is dict or tp is dict:
        return {"type": "object"}
    if origin in (typing.Union, types.UnionType):
        options = [_type_schema(a) for a in args]
        return {"anyOf": options}
    if origin is typing.Literal:
        return {"enum": list(args)}
    return {}
