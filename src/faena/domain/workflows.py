"""Workflow definitions: a named DAG of steps, parsed from YAML or a dict and validated.

Validation happens once, when a workflow is applied: duplicate step ids, unknown ``needs``, a
cycle, an unknown kind, a template that does not compile, a template reading an input that is
not declared or a step that is not upstream — each refused with the step and, for YAML, the line.
The definition is stored as its canonical dict (:meth:`WorkflowDef.to_dict`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from faena.domain.errors import ValidationError
from faena.domain.templates import TemplateError, compile_template, references, strings_in

MAX_STEPS = 200
MAX_FAN_OUT = 10_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_STEP_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
INPUT_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "any": (object,),
}
ON_FAILURE = ("stop", "continue")
_LINE = "__line__"
_STEP_KEYS = frozenset(
    {
        "id",
        "kind",
        "with",
        "needs",
        "when",
        "for_each",
        "max_parallel",
        "retries",
        "timeout_s",
        "labels",
        "queue",
        "priority",
        "if_skipped",
        _LINE,
    }
)
_TOP_KEYS = frozenset(
    {
        "name",
        "description",
        "inputs",
        "steps",
        "on_failure",
        "schedule",
        "webhook",
        "triggers",
        _LINE,
    }
)


@dataclass(frozen=True, slots=True)
class InputDef:
    name: str
    type: str = "any"
    required: bool = True
    default: Any = None
    description: str | None = None  # for people and for /v1/ask, which fills inputs from text

    def check(self, value: Any) -> None:
        accepted = INPUT_TYPES[self.type]
        bad = not isinstance(value, accepted) or (
            isinstance(value, bool) and self.type in {"integer", "number"}
        )
        if bad:
            raise ValidationError(
                f"input {self.name!r} must be of type {self.type}, got {type_name(value)}"
            )


def type_name(value: Any) -> str:
    for name, types in INPUT_TYPES.items():
        if (
            name != "any"
            and isinstance(value, types)
            and not (isinstance(value, bool) and name in {"integer", "number"})
        ):
            return name
    return "null" if value is None else type(value).__name__


@dataclass(frozen=True, slots=True)
class StepDef:
    id: str
    kind: str
    with_: Any = None
    needs: tuple[str, ...] = ()
    when: str | None = None
    for_each: Any = None  # a template giving a list, or a literal list
    max_parallel: int | None = None
    retries: int | None = None
    timeout_s: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    queue: str | None = None
    priority: int = 0
    if_skipped: str = "skip"  # "run": run even when a step it needs was skipped
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind}
        optional = {
            "with": self.with_,
            "needs": list(self.needs) or None,
            "when": self.when,
            "for_each": self.for_each,
            "max_parallel": self.max_parallel,
            "retries": self.retries,
            "timeout_s": self.timeout_s,
            "labels": self.labels or None,
            "queue": self.queue,
            "priority": self.priority or None,
            "if_skipped": None if self.if_skipped == "skip" else self.if_skipped,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        return out


@dataclass(frozen=True, slots=True)
class ScheduleDef:
    cron: str
    timezone: str = "UTC"
    catch_up: bool = True  # a tick missed while every server was down fires once on start

    def to_dict(self) -> dict[str, Any]:
        return {"cron": self.cron, "timezone": self.timezone, "catch_up": self.catch_up}


@dataclass(frozen=True, slots=True)
class TriggerDef:
    """Start the workflow when a job of ``kind`` or a run of ``workflow`` reaches ``state``."""

    on: str  # "job" | "run"
    state: str
    kind: str | None = None
    workflow: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"on": self.on, "state": self.state, "kind": self.kind, "workflow": self.workflow}
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True, slots=True)
class WebhookDef:
    """An inbound webhook ``POST /v1/hooks/{token}``; ``verify`` demands an HMAC signature."""

    enabled: bool = True
    verify: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "verify": self.verify}


@dataclass(frozen=True, slots=True)
class WorkflowDef:
    name: str
    steps: tuple[StepDef, ...]
    inputs: tuple[InputDef, ...] = ()
    on_failure: str = "stop"
    schedule: ScheduleDef | None = None
    webhook: WebhookDef | None = None
    triggers: tuple[TriggerDef, ...] = ()
    description: str | None = None

    def step(self, step_id: str) -> StepDef:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        if self.inputs:
            out["inputs"] = {
                i.name: {"type": i.type, "required": i.required}
                | ({"default": i.default} if not i.required and i.default is not None else {})
                | ({"description": i.description} if i.description else {})
                for i in self.inputs
            }
        out["on_failure"] = self.on_failure
        if self.schedule is not None:
            out["schedule"] = self.schedule.to_dict()
        if self.webhook is not None:
            out["webhook"] = self.webhook.to_dict()
        if self.triggers:
            out["triggers"] = [t.to_dict() for t in self.triggers]
        out["steps"] = [s.to_dict() for s in self.steps]
        return out

    def resolve_inputs(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """The run's inputs: ``given`` checked by type, with defaults; unknown names refused."""
        given = dict(given or {})
        declared = {i.name: i for i in self.inputs}
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise ValidationError(
                f"unknown input {unknown[0]!r}; declared inputs: {', '.join(declared) or 'none'}"
            )
        out: dict[str, Any] = {}
        for spec in self.inputs:
            if spec.name in given:
                spec.check(given[spec.name])
                out[spec.name] = given[spec.name]
            elif spec.required:
                raise ValidationError(f"missing input {spec.name!r} ({spec.type})")
            else:
                out[spec.name] = spec.default
        return out

    def topological_order(self) -> list[str]:
        return _toposort({s.id: s.needs for s in self.steps})


# -- parsing ----------------------------------------------------------------------------------


class _LineLoader(yaml.SafeLoader):
    """A safe loader that records the line of every mapping under ``__line__``."""


def _mapping_with_line(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping[_LINE] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


def load_yaml(text: str) -> Any:
    """The YAML (or JSON) document, with ``__line__`` in each mapping."""
    try:
        return yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ValidationError(f"invalid YAML{where}: {problem}") from None


def strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_lines(v) for k, v in value.items() if k != _LINE}
    if isinstance(value, list):
        return [strip_lines(v) for v in value]
    return value


def parse_workflow(  # noqa: PLR0912 - one flat check per field reads best
    data: Any,
    *,
    name: str | None = None,
    known_kinds: Iterable[str] | None = None,
    check_cron: Callable[[str, str], None] | None = None,
) -> WorkflowDef:
    """A validated :class:`WorkflowDef` from a loaded document (with or without line marks).

    ``name`` (from the URL) must match the document's, if it has one. ``known_kinds`` (None:
    any) are the kinds steps may use. ``check_cron(expr, tz)`` validates a schedule."""
    if not isinstance(data, dict):
        raise ValidationError("a workflow must be a mapping with 'name' and 'steps'")
    _unknown_keys(data, _TOP_KEYS, "workflow")
    doc_name = data.get("name", name)
    if name is not None and doc_name != name:
        raise ValidationError(f"the document names workflow {doc_name!r} but the URL {name!r}")
    if not isinstance(doc_name, str) or not _NAME.match(doc_name):
        raise ValidationError(
            "name: a workflow name is 1-100 letters, digits, '_', '-' or '.', starting with a "
            "letter or digit"
        )
    inputs = _parse_inputs(data.get("inputs"))
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ValidationError("steps: a workflow needs a non-empty list of steps")
    if len(raw_steps) > MAX_STEPS:
        raise ValidationError(f"steps: at most {MAX_STEPS} steps")
    steps = tuple(_parse_step(raw, i) for i, raw in enumerate(raw_steps))
    on_failure = data.get("on_failure", "stop")
    if on_failure not in ON_FAILURE:
        raise ValidationError("on_failure must be 'stop' or 'continue'")
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        raise ValidationError("description must be a string")
    workflow = WorkflowDef(
        name=doc_name,
        steps=steps,
        inputs=inputs,
        on_failure=on_failure,
        schedule=_parse_schedule(data.get("schedule"), check_cron),
        webhook=_parse_webhook(data.get("webhook")),
        triggers=_parse_triggers(data.get("triggers")),
        description=description,
    )
    _check_graph(workflow, known_kinds)
    for trigger in workflow.triggers:
        if trigger.on == "run" and trigger.workflow == workflow.name:
            raise ValidationError("triggers: a workflow cannot be triggered by its own runs")
    if workflow.triggers and "event" not in {i.name for i in workflow.inputs}:
        workflow = WorkflowDef(
            **{
                **_fields(workflow),
                "inputs": (*workflow.inputs, InputDef("event", "object", required=False)),
            }
        )
    if workflow.schedule is not None:
        for spec in workflow.inputs:
            if spec.required:
                raise ValidationError(
                    f"inputs.{spec.name}: a scheduled workflow starts without inputs; give "
                    "this input a default"
                )
    return workflow


def _where(step: StepDef | None = None, raw: Any = None, index: int | None = None) -> str:
    line = step.line if step is not None else (raw.get(_LINE) if isinstance(raw, dict) else None)
    sid = step.id if step is not None else (raw.get("id") if isinstance(raw, dict) else None)
    label = f"step {sid!r}" if isinstance(sid, str) else f"step #{(index or 0) + 1}"
    return f"{label} (line {line})" if line else label


def _unknown_keys(data: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    extra = sorted(str(k) for k in data if k not in allowed)
    if extra:
        raise ValidationError(f"{where}: unknown field {extra[0]!r}")


def _parse_inputs(raw: Any) -> tuple[InputDef, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ValidationError("inputs must map input names to a type or {type, default}")
    out = []
    for name, given in raw.items():
        if name == _LINE:
            continue
        if not isinstance(name, str) or not _STEP_ID.match(name):
            raise ValidationError(f"inputs: {name!r} is not a valid input name")
        spec = {"type": given} if isinstance(given, str) else ({} if given is None else given)
        if not isinstance(spec, dict):
            raise ValidationError(f"inputs.{name}: give a type name or {{type, default}}")
        typ = spec.get("type", "any")
        if typ not in INPUT_TYPES:
            raise ValidationError(
                f"inputs.{name}: unknown type {typ!r}; use {', '.join(INPUT_TYPES)}"
            )
        has_default = "default" in spec
        required = bool(spec.get("required", not has_default))
        default = strip_lines(spec.get("default"))
        description = spec.get("description")
        if description is not None and not isinstance(description, str):
            raise ValidationError(f"inputs.{name}.description must be a string")
        item = InputDef(
            name=name, type=typ, required=required, default=default, description=description
        )
        if has_default and default is not None:
            try:
                item.check(default)
            except ValidationError as e:
                raise ValidationError(f"inputs.{name}: default: {e.message}") from None
        out.append(item)
    return tuple(out)


def _parse_step(raw: Any, index: int) -> StepDef:  # noqa: PLR0912 - one check per field
    where = _where(raw=raw, index=index)
    if not isinstance(raw, dict):
        raise ValidationError(f"{where}: a step must be a mapping with 'id' and 'kind'")
    _unknown_keys(raw, _STEP_KEYS, where)
    step_id, kind = raw.get("id"), raw.get("kind")
    if not isinstance(step_id, str) or not _STEP_ID.match(step_id):
        raise ValidationError(
            f"{where}: 'id' must be a name of letters, digits and '_' (not starting with a digit)"
        )
    if not isinstance(kind, str) or not kind or len(kind) > 200 or any(c.isspace() for c in kind):
        raise ValidationError(f"{where}: 'kind' must be a non-empty name without spaces")
    needs = raw.get("needs", [])
    if isinstance(needs, str):
        needs = [needs]
    if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
        raise ValidationError(f"{where}: 'needs' must be a list of step ids")
    when = raw.get("when")
    if when is not None and not isinstance(when, str | bool):
        raise ValidationError(f"{where}: 'when' must be a template string")
    for_each = strip_lines(raw.get("for_each"))
    if for_each is not None and not isinstance(for_each, str | list):
        raise ValidationError(f"{where}: 'for_each' must be a list or a template giving one")
    if isinstance(for_each, list) and len(for_each) > MAX_FAN_OUT:
        raise ValidationError(f"{where}: 'for_each' holds at most {MAX_FAN_OUT} items")
    max_parallel = _opt_int(raw, "max_parallel", where, 1, MAX_FAN_OUT)
    if max_parallel is not None and for_each is None:
        raise ValidationError(f"{where}: 'max_parallel' needs 'for_each'")
    timeout = raw.get("timeout_s")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise ValidationError(f"{where}: 'timeout_s' must be a positive number")
    labels = strip_lines(raw.get("labels") or {})
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise ValidationError(f"{where}: 'labels' must map names to strings")
    queue = raw.get("queue")
    if queue is not None and not isinstance(queue, str):
        raise ValidationError(f"{where}: 'queue' must be a string")
    if_skipped = raw.get("if_skipped", "skip")
    if if_skipped not in ("skip", "run"):
        raise ValidationError(f"{where}: 'if_skipped' must be 'skip' or 'run'")
    return StepDef(
        id=step_id,
        kind=kind,
        with_=strip_lines(raw.get("with")),
        needs=tuple(needs),
        when=str(when).lower() if isinstance(when, bool) else when,
        for_each=for_each,
        max_parallel=max_parallel,
        retries=_opt_int(raw, "retries", where, 0, 999),
        timeout_s=float(timeout) if timeout is not None else None,
        labels=labels,
        queue=queue,
        priority=_opt_int(raw, "priority", where, -1_000_000, 1_000_000) or 0,
        if_skipped=if_skipped,
        line=raw.get(_LINE),
    )


def _opt_int(raw: dict[str, Any], key: str, where: str, low: int, high: int) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"{where}: {key!r} must be an integer from {low} to {high}")
    return value


def _parse_schedule(raw: Any, check_cron: Callable[[str, str], None] | None) -> ScheduleDef | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = {"cron": raw}
    if not isinstance(raw, dict):
        raise ValidationError("schedule must be a cron string or {cron, timezone, catch_up}")
    _unknown_keys(raw, frozenset({"cron", "timezone", "catch_up", _LINE}), "schedule")
    cron, tz = raw.get("cron"), raw.get("timezone", "UTC")
    if not isinstance(cron, str) or not isinstance(tz, str):
        raise ValidationError("schedule: 'cron' and 'timezone' must be strings")
    catch_up = raw.get("catch_up", True)
    if not isinstance(catch_up, bool):
        raise ValidationError("schedule: 'catch_up' must be true or false")
    if check_cron is not None:
        check_cron(cron, tz)
    return ScheduleDef(cron=cron, timezone=tz, catch_up=catch_up)


def _parse_webhook(raw: Any) -> WebhookDef | None:
    if raw is None or raw is False:
        return None
    if raw is True:
        return WebhookDef()
    if not isinstance(raw, dict):
        raise ValidationError("webhook must be true or {enabled, verify}")
    _unknown_keys(raw, frozenset({"enabled", "verify", _LINE}), "webhook")
    enabled, verify = raw.get("enabled", True), raw.get("verify", False)
    if not isinstance(enabled, bool) or not isinstance(verify, bool):
        raise ValidationError("webhook: 'enabled' and 'verify' must be true or false")
    return WebhookDef(enabled=enabled, verify=verify)


_TRIGGER_STATES = {
    "job": ("succeeded", "failed", "cancelled"),
    "run": ("succeeded", "failed", "cancelled"),
}


def _parse_triggers(raw: Any) -> tuple[TriggerDef, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValidationError("triggers must be a list")
    out = []
    for i, raw_item in enumerate(raw):
        item = raw_item
        where = f"triggers[{i}]" + (f" (line {item.get(_LINE)})" if isinstance(item, dict) else "")
        if not isinstance(item, dict):
            raise ValidationError(f"{where}: a trigger is {{on, state, kind|workflow}}")
        if True in item:  # YAML 1.1 reads a bare `on:` key as the boolean true
            item = {("on" if k is True else k): v for k, v in item.items()}
        _unknown_keys(item, frozenset({"on", "state", "kind", "workflow", _LINE}), where)
        on, state = item.get("on"), item.get("state", "succeeded")
        if on not in _TRIGGER_STATES:
            raise ValidationError(f"{where}: 'on' must be 'job' or 'run'")
        if state not in _TRIGGER_STATES[on]:
            raise ValidationError(f"{where}: 'state' must be one of {_TRIGGER_STATES[on]}")
        key = "kind" if on == "job" else "workflow"
        target = item.get(key)
        if not isinstance(target, str) or not target:
            raise ValidationError(f"{where}: a {on} trigger needs '{key}'")
        out.append(TriggerDef(on=on, state=state, **{key: target}))
    return tuple(out)


def _check_graph(workflow: WorkflowDef, known_kinds: Iterable[str] | None) -> None:  # noqa: PLR0912
    seen: dict[str, StepDef] = {}
    for step in workflow.steps:
        if step.id in seen:
            first = seen[step.id]
            raise ValidationError(
                f"{_where(step)}: duplicate step id (first defined"
                f"{f' at line {first.line}' if first.line else ''})"
            )
        seen[step.id] = step
    kinds = None if known_kinds is None else frozenset(known_kinds)
    for step in workflow.steps:
        for need in step.needs:
            if need not in seen:
                raise ValidationError(f"{_where(step)}: needs unknown step {need!r}")
            if need == step.id:
                raise ValidationError(f"{_where(step)}: a step cannot need itself")
        if kinds is not None and step.kind not in kinds:
            listed = ", ".join(sorted(kinds)) or "none"
            raise ValidationError(
                f"{_where(step)}: unknown kind {step.kind!r}; kinds served here: {listed}"
            )
    cycle = find_cycle({s.id: s.needs for s in workflow.steps})
    if cycle:
        first = seen[cycle[0]]
        raise ValidationError(f"{_where(first)}: dependency cycle {' -> '.join(cycle)}")
    ancestors = _ancestors({s.id: s.needs for s in workflow.steps})
    declared = {i.name for i in workflow.inputs}
    if workflow.triggers:
        declared.add("event")
    for step in workflow.steps:
        fields = {"with": step.with_, "when": step.when, "for_each": step.for_each}
        for field_name, value in fields.items():
            for text in strings_in(value):
                try:
                    compile_template(text)
                    refs = references(text)
                except TemplateError as e:
                    raise ValidationError(f"{_where(step)}: {field_name}: {e}") from None
                for name in sorted(refs.inputs - declared):
                    raise ValidationError(
                        f"{_where(step)}: {field_name}: reads inputs.{name}, which is not a "
                        f"declared input"
                    )
                for sid in sorted(refs.steps - ancestors[step.id]):
                    what = "unknown step" if sid not in seen else "a step it does not need"
                    raise ValidationError(
                        f"{_where(step)}: {field_name}: reads steps.{sid}, {what} (add it to "
                        f"'needs')"
                    )


def _fields(workflow: WorkflowDef) -> dict[str, Any]:
    return {f: getattr(workflow, f) for f in WorkflowDef.__dataclass_fields__}


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str]:
    """A cycle as ``[a, b, ..., a]``, or ``[]``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for node in graph:
        if node not in state and (found := visit(node)):
            return found
    return []


def _toposort(graph: Mapping[str, Iterable[str]]) -> list[str]:
    order: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        if node in done:
            return
        done.add(node)
        for nxt in graph.get(node, ()):
            visit(nxt)
        order.append(node)

    for node in graph:
        visit(node)
    return order


def _ancestors(graph: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    for node in _toposort(graph):
        acc: set[str] = set()
        for need in graph.get(node, ()):
            acc.add(need)
            acc |= out[need]
        out[node] = frozenset(acc)
    return out
