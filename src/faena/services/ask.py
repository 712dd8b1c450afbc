"""``/v1/ask``: a sentence picks the tenant's workflow that fits and fills its inputs.

The pick is an embedding match of the sentence against each workflow's name, description
and input descriptions (the real model; the workflow vectors are kept per version, so only
a new version is embedded again). When the tenant has an LLM configured, the model confirms
the pick among the best candidates and extracts the inputs (structured output); without one,
inputs come from ``name=value`` / ``name: "value"`` in the sentence, given inputs and defaults.
The result is a plan; ``execute`` starts the run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from faena.domain.auth import Principal
from faena.domain.errors import ValidationError
from faena.domain.llm import ChatRequest, ChatResult, Message
from faena.domain.runs import Run
from faena.domain.workflows import InputDef
from faena.ports.embedder import Embedder

MAX_TEXT = 2000
CANDIDATES = 3


class Workflows(Protocol):
    async def list_workflows(self, tenant: str) -> list[Any]: ...

    async def version(self, tenant: str, name: str, version: int | None = None) -> Any: ...

    async def start(
        self, tenant: str, name: str, inputs: Any = None, *, principal: Principal | None = None
    ) -> tuple[Run, bool]: ...


class Llm(Protocol):
    async def configured(self, tenant: str) -> bool: ...

    async def chat(self, tenant: str, request: ChatRequest) -> ChatResult: ...


class NoMatch(ValidationError):
    """No workflow is close enough to the sentence (422: rephrase, or describe workflows)."""

    code = "no_match"


@dataclass(frozen=True, slots=True)
class Candidate:
    workflow: str
    version: int
    similarity: float


@dataclass(slots=True)
class Plan:
    workflow: str
    version: int
    similarity: float
    confirmed_by: str  # embedding | llm
    inputs: dict[str, Any]
    missing_inputs: list[str]
    candidates: list[Candidate]
    run: Run | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Described:
    version: int
    text: str
    inputs: tuple[InputDef, ...]
    vector: list[float]


class AskService:
    def __init__(
        self,
        workflows: Workflows,
        embedder: Embedder,
        llm: Callable[[], Llm | None],
        *,
        threshold: float = 0.35,
    ) -> None:
        self.workflows = workflows
        self.embedder = embedder
        self._llm = llm
        self.threshold = threshold
        self._vectors: dict[tuple[str, str], _Described] = {}

    async def ask(
        self,
        tenant: str,
        text: str,
        *,
        inputs: dict[str, Any] | None = None,
        execute: bool = False,
        principal: Principal | None = None,
    ) -> Plan:
        text = text.strip()
        if not text:
            raise ValidationError("text must not be empty")
        if len(text) > MAX_TEXT:
            raise ValidationError(f"text is longer than {MAX_TEXT} characters")
        described = await self._describe_all(tenant)
        if not described:
            raise NoMatch("this tenant has no workflows to choose from")
        (query,) = await self.embedder.embed([text])
        ranked = sorted(
            (
                Candidate(name, d.version, round(_dot(query, d.vector), 4))
                for name, d in described.items()
            ),
            key=lambda c: -c.similarity,
        )
        top = ranked[:CANDIDATES]
        best = top[0]
        llm = self._llm()
        if llm is not None and await llm.configured(tenant):
            plan = await self._confirm(llm, tenant, text, top, described)
        else:
            if best.similarity < self.threshold:
                raise NoMatch(
                    f"no workflow fits (best: {best.workflow!r} at {best.similarity:.2f}, "
                    f"below {self.threshold:.2f}); describe your workflows or rephrase"
                )
            d = described[best.workflow]
            plan = Plan(
                best.workflow,
                best.version,
                best.similarity,
                "embedding",
                _inputs_from_text(text, d.inputs),
                [],
                top,
            )
        d = described[plan.workflow]
        plan.inputs = _complete(d.inputs, plan.inputs, inputs or {})
        plan.missing_inputs = [i.name for i in d.inputs if i.required and i.name not in plan.inputs]
        if execute:
            if plan.missing_inputs:
                raise ValidationError(
                    f"cannot start {plan.workflow!r}: missing inputs "
                    f'{", ".join(plan.missing_inputs)}; give them in "inputs"'
                )
            plan.run, _ = await self.workflows.start(
                tenant, plan.workflow, plan.inputs, principal=principal
            )
        return plan

    async def _describe_all(self, tenant: str) -> dict[str, _Described]:
        infos = await self.workflows.list_workflows(tenant)
        out: dict[str, _Described] = {}
        stale: list[tuple[str, int, str, tuple[InputDef, ...]]] = []
        for info in infos:
            known = self._vectors.get((tenant, info.name))
            if known is not None and known.version == info.latest_version:
                out[info.name] = known
                continue
            version = await self.workflows.version(tenant, info.name, info.latest_version)
            text, inputs = describe_workflow(info.name, version.definition)
            stale.append((info.name, info.latest_version, text, inputs))
        if stale:
            vectors = await self.embedder.embed([s[2] for s in stale])
            for (name, version_no, text, inputs), vector in zip(stale, vectors, strict=True):
                described = _Described(version_no, text, inputs, vector)
                self._vectors[(tenant, name)] = described
                out[name] = described
        return out

    async def _confirm(
        self,
        llm: Llm,
        tenant: str,
        text: str,
        top: list[Candidate],
        described: dict[str, _Described],
    ) -> Plan:
        names = [c.workflow for c in top]
        listing = "\n".join(f"- {described[n].text}" for n in names)
        schema = {
            "type": "object",
            "properties": {
                "workflow": {"enum": [*names, "none"]},
                "inputs": {"type": "object"},
            },
            "required": ["workflow", "inputs"],
        }
        request = ChatRequest(
            messages=(
                Message(
                    "system",
                    "Pick the workflow that does what the user asks, or none, and fill its "
                    "inputs from the request. Answer with JSON only.",
                ),
                Message("user", f"Workflows:\n{listing}\n\nRequest: {text}"),
            ),
            temperature=0,
            response_schema=schema,
        )
        answer = await llm.chat(tenant, request)
        output = answer.output if isinstance(answer.output, dict) else {}
        picked = output.get("workflow")
        if picked not in names:
            raise NoMatch(
                f"the model found no workflow for this request ({names[0]!r} was closest)"
            )
        chosen = next(c for c in top if c.workflow == picked)
        raw_inputs = output.get("inputs")
        declared = {i.name for i in described[picked].inputs}
        filled = (
            {k: v for k, v in raw_inputs.items() if k in declared}
            if isinstance(raw_inputs, dict)
            else {}
        )
        return Plan(picked, chosen.version, chosen.similarity, "llm", filled, [], top)


def describe_workflow(name: str, definition: dict[str, Any]) -> tuple[str, tuple[InputDef, ...]]:
    """The text a workflow is matched on: its name in words, description and inputs."""
    words = re.sub(r"[-_.]+", " ", name)
    parts = [words]
    if definition.get("description"):
        parts.append(str(definition["description"]))
    inputs: list[InputDef] = []
    for input_name, raw in (definition.get("inputs") or {}).items():
        spec = raw if isinstance(raw, dict) else {}
        inputs.append(
            InputDef(
                name=input_name,
                type=spec.get("type", "any"),
                required=bool(spec.get("required", True)),
                default=spec.get("default"),
                description=spec.get("description"),
            )
        )
        about = spec.get("description")
        parts.append(f"input {input_name}" + (f": {about}" if about else ""))
    return ". ".join(parts), tuple(inputs)


_VALUE = r"""\s*[=:]\s*(?:"([^"]*)"|'([^']*)'|(\S+))"""


def _inputs_from_text(text: str, inputs: tuple[InputDef, ...]) -> dict[str, Any]:
    """``name=value``, ``name: value`` or ``name: "a value"`` for each declared input."""
    out: dict[str, Any] = {}
    for spec in inputs:
        m = re.search(rf"(?<![A-Za-z0-9_]){re.escape(spec.name)}{_VALUE}", text)
        if m is None:
            continue
        quoted = next((g for g in (m.group(1), m.group(2)) if g is not None), None)
        raw = quoted if quoted is not None else m.group(3).rstrip(".,;")
        out[spec.name] = _coerce(raw, spec.type)
    return out


def _coerce(raw: str, typ: str) -> Any:
    try:
        if typ == "integer":
            return int(raw)
        if typ == "number":
            return float(raw)
    except ValueError:
        return raw
    if typ == "boolean":
        return raw.lower() in {"true", "yes", "1", "on"}
    return raw


def _complete(
    declared: tuple[InputDef, ...], filled: dict[str, Any], given: dict[str, Any]
) -> dict[str, Any]:
    """Given inputs win over extracted ones; unknown given names are refused."""
    names = {i.name for i in declared}
    unknown = sorted(set(given) - names)
    if unknown:
        raise ValidationError(
            f"unknown input {unknown[0]!r}; declared inputs: {', '.join(sorted(names)) or 'none'}"
        )
    out = {**filled, **given}
    for spec in declared:
        if spec.name not in out and not spec.required and spec.default is not None:
            out[spec.name] = spec.default
    return out


def _dot(a: list[float], b: list[float]) -> float:
    return float(sum(x * y for x, y in zip(a, b, strict=True)))
