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
    if isinstance(raw, str):
        raw = {"kind": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str) or not raw["kind"]:
        raise ValidationError(f"agno tools[{i}] must be a kind name or {{kind, description}}")
    unknown = sorted(set(raw) - {"kind", "description", "parameters"})
    if unknown:
        raise ValidationError(f"agno tools[{i}]: unknown field {unknown[0]!r}")
    kind = raw["kind"]
    if kind in FORBIDDEN_TOOLS or kind in {KIND, AGENT_KIND}:
        raise ValidationError(f"agno tools[{i}]: {kind!r} cannot be an agno tool")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ValidationError(f"agno tools[{i}].description must be a string")
    parameters = raw.get("parameters")
    if parameters is not None and (
        not isinstance(parameters, dict) or parameters.get("type", "object") != "object"
    ):
        raise ValidationError(f"agno tools[{i}].parameters must be a JSON Schema object")
    return KindTool(kind, description, parameters)


def _name(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise ValidationError(f"agno {key} must be a non-empty string")
    return value


def _number(
    payload: dict[str, Any], key: str, low: float, high: float, *, integer: bool = False
) -> float | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise ValidationError(f"agno {key} must be {'an integer' if integer else 'a number'}")
    if not low <= value <= high:
        raise ValidationError(f"agno {key} must be between {low:g} and {high:g}")
    return float(value)
