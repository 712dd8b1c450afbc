"""The ``agno`` kind's payload (issue 8, ``faena[agno]``): an Agno agent run as one job. Pure.

The model is one of the tenant's LLM providers' models (``provider/model`` or a bare model
name); the provider's endpoint and API key come from its configuration, never from here. Each
tool is a faena kind (or ``@faena.task``) whose calls run as child jobs, as the ``agent`` kind's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faena.domain.agents import (
    FORBIDDEN_TOOLS,
    MAX_STEPS,
    MAX_TIME_LIMIT_S,
    MAX_TOOLS,
    KindTool,
    kind_tool,
    opt_number,
    opt_str,
    tool_name,
)
from faena.domain.agents import KIND as AGENT_KIND
from faena.domain.errors import ValidationError

KIND = "agno"
INSTALL_HINT = "the agno kind needs the agno extra on the server: pip install 'faena[agno]'"
MAX_INPUT_CHARS = 1_000_000
_FIELDS = frozenset(
    {
        "model",
        "instructions",
        "input",
        "tools",
        "max_steps",
        "timeout_s",
        "tool_timeout_s",
        "tool_queue",
        "temperature",
        "response_schema",
        "stream",
    }
)


@dataclass(frozen=True, slots=True)
class AgnoSpec:
    model: str
    input: str
    instructions: str | None = None
    tools: tuple[KindTool, ...] = ()
    max_steps: int = 10  # model calls
    timeout_s: float = 300.0  # the whole run
    tool_timeout_s: float = 120.0  # each tool's child job
    tool_queue: str | None = None
    temperature: float | None = None
    response_schema: dict[str, Any] | None = None
    stream: bool = True  # the answer's text into the job's stdout log as it arrives


def parse_agno_payload(payload: Any) -> AgnoSpec:
    """The payload as an :class:`AgnoSpec`, or a ValidationError naming the bad field."""
    if not isinstance(payload, dict):
        raise ValidationError("an agno payload is an object with at least model and input")
    unknown = sorted(set(payload) - _FIELDS)
    if unknown:
        raise ValidationError(f"unknown agno field {unknown[0]!r}")
    model, text = payload.get("model"), payload.get("input")
    if not isinstance(model, str) or not model.strip():
        raise ValidationError(
            "agno model must be a non-empty string: a model of the tenant's LLM providers"
        )
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("agno input must be a non-empty string (the user message)")
    if len(text) > MAX_INPUT_CHARS:
        raise ValidationError(f"agno input is longer than {MAX_INPUT_CHARS} characters")
    instructions = payload.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise ValidationError("agno instructions must be a string")
    raw_tools = payload.get("tools", [])
    if not isinstance(raw_tools, list):
        raise ValidationError("agno tools must be a list of kind names")
    if len(raw_tools) > MAX_TOOLS:
        raise ValidationError(f"an agno agent has at most {MAX_TOOLS} tools")
    tools = tuple(_tool(t, i) for i, t in enumerate(raw_tools))
    names = [tool_name(t.kind) for t in tools]
    if len(set(names)) != len(names):
        raise ValidationError("two agno tools have the same name once dots become _")
    schema = payload.get("response_schema")
    if schema is not None and not isinstance(schema, dict):
        raise ValidationError("agno response_schema must be a JSON Schema object")
    stream = payload.get("stream", True)
    if not isinstance(stream, bool):
        raise ValidationError("agno stream must be true or false")
    return AgnoSpec(
        model=model.strip(),
        input=text,
        instructions=instructions or None,
        tools=tools,
        max_steps=int(_number(payload, "max_steps", 1, MAX_STEPS, integer=True) or 10),
        timeout_s=_number(payload, "timeout_s", 0.1, MAX_TIME_LIMIT_S) or 300.0,
        tool_timeout_s=_number(payload, "tool_timeout_s", 0.1, MAX_TIME_LIMIT_S) or 120.0,
        tool_queue=_name(payload, "tool_queue"),
        temperature=_number(payload, "temperature", 0, 2),
        response_schema=schema,
        stream=stream,
    )


def _tool(raw: Any, i: int) -> KindTool:
    return kind_tool(raw, i, what=KIND, forbidden=FORBIDDEN_TOOLS | {KIND, AGENT_KIND})


def _name(payload: dict[str, Any], key: str) -> str | None:
    return opt_str(payload, key, what=KIND)


def _number(
    payload: dict[str, Any], key: str, low: float, high: float, *, integer: bool = False
) -> float | None:
    return opt_number(payload, key, low, high, integer=integer, what=KIND)
