"""Templates of workflow steps: a sandboxed Jinja2 with native values and bounded output.

A string that is exactly one expression (``"{{ steps.a.output }}"``) evaluates to the value
itself (a number stays a number, a dict a dict); any other string renders to text. Templates are
compiled when a workflow is applied, so a syntax error is refused with the step and line; a
template that fails when it runs (an undefined name, a type error) raises
:class:`TemplateError`, which fails the step with the message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from jinja2 import StrictUndefined, Undefined, nodes
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from faena.domain.secrets import REFERENCE, reference

MAX_RENDERED_CHARS = 1_000_000  # one rendered string, or one native value as JSON
_WHOLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.DOTALL)


class TemplateError(Exception):
    """A template that cannot compile or cannot render."""


def defuse_secret_references(value: Any) -> Any:
    """Data (inputs, a webhook's body, an e-mail, a step's output) that *looks like* a secret
    reference is altered (``{ { secrets.X } }``), so that only references written in the workflow
    itself are resolved: an outsider cannot make a step carry a secret by sending the text."""
    if isinstance(value, str):
        if "secrets" not in value:
            return value
        return REFERENCE.sub(lambda m: m.group(0).replace("{{", "{ {").replace("}}", "} }"), value)
    if isinstance(value, list):
        return [defuse_secret_references(v) for v in value]
    if isinstance(value, dict):
        return {defuse_secret_references(k): defuse_secret_references(v) for k, v in value.items()}
    return value


class _Environment(ImmutableSandboxedEnvironment):
    """No attribute access to internals (the sandbox), no mutation of inputs (immutable),
    undefined names are errors (strict), no loops beyond a small range, and no ``*``/``**``
    that would build a huge value before the output bound could see it."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self) -> None:
        super().__init__(
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            finalize=defuse_secret_references,
        )
        self.globals = {"range": _small_range, "dict": dict, "lipsum": None}
        del self.globals["lipsum"]

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``x.items`` reads the key ``items`` of a dict before its method: data wins."""
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > 100:
            raise SecurityError("exponents above 100 are not allowed in templates")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(n, int)
                if sized and len(seq) * n > MAX_RENDERED_CHARS:
                    raise SecurityError("a template tried to build a value over the limit")
        return super().call_binop(context, operator, left, right)


def _small_range(*args: int) -> range:
    r = range(*args)
    if len(r) > 10_000:
        raise SecurityError("range() is limited to 10000 items in templates")
    return r


_ENV = _Environment()


def is_template(value: str) -> bool:
    return "{{" in value or "{%" in value or "{#" in value


def _keep_secret_references(source: str) -> str:
    """``{{ secrets.NAME }}`` is not rendered here: it stays as text (in a raw block) for the
    server to resolve when the step's job is handed to its worker (docs/secrets.md)."""
    if "secrets" not in source:
        return source
    return REFERENCE.sub(
        lambda m: "{% raw %}" + reference(m.group("attr") or m.group("key")) + "{% endraw %}",
        source,
    )


@lru_cache(maxsize=4096)
def _compile(source: str) -> tuple[bool, Any]:
    """(native, compiled): an expression for whole-value templates, a Template otherwise."""
    match = _WHOLE_EXPRESSION.match(source)
    try:
        if match is not None:
            return True, _ENV.compile_expression(match.group("expr"), undefined_to_none=False)
        return False, _ENV.from_string(source)
    except JinjaTemplateError as e:
        raise TemplateError(_describe(e)) from None


def compile_template(source: str) -> None:
    """Raise :class:`TemplateError` unless ``source`` compiles."""
    _compile(_keep_secret_references(source))


def render_string(source: str, context: Mapping[str, Any]) -> Any:
    if not is_template(source):
        return source
    whole = REFERENCE.fullmatch(source.strip())
    if whole is not None:
        return reference(whole.group("attr") or whole.group("key"))
    native, compiled = _compile(_keep_secret_references(source))
    try:
        value = compiled(**context) if native else compiled.render(**context)
        if native:
            value = defuse_secret_references(value)
        return _bounded(_plain(value))
    except (JinjaTemplateError, SecurityError) as e:
        raise TemplateError(_describe(e)) from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as e:
        raise TemplateError(f"{type(e).__name__}: {e}") from None


def render_value(value: Any, context: Mapping[str, Any], where: str = "") -> Any:
    """``value`` with every string rendered, recursively through lists and dicts (keys too)."""
    if isinstance(value, str):
        try:
            return render_string(value, context)
        except TemplateError as e:
            raise TemplateError(f"{where}: {e}" if where else str(e)) from None
    if isinstance(value, list):
        return [render_value(v, context, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = render_value(k, context, where) if isinstance(k, str) else k
            out[str(key)] = render_value(v, context, f"{where}.{k}" if where else str(k))
        return out
    return value


def _plain(value: Any) -> Any:
    """Jinja's own objects (undefined, markup, generators) as plain JSON values."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | range):
        return [_plain(v) for v in value]
    if isinstance(value, Iterator):
        return [_plain(v) for v in _take(value)]
    return str(value)


def _take(values: Iterator[Any]) -> list[Any]:
    out = []
    for v in values:
        out.append(v)
        if len(out) > 100_000:
            raise TemplateError("a template produced more than 100000 items")
    return out


def _bounded(value: Any) -> Any:
    size = len(value) if isinstance(value, str) else len(orjson.dumps(value, default=str))
    if size > MAX_RENDERED_CHARS:
        raise TemplateError(
            f"a template rendered {size} characters; the limit is {MAX_RENDERED_CHARS}"
        )
    return value


def _describe(error: Exception) -> str:
    message = getattr(error, "message", None) or str(error)
    line = getattr(error, "lineno", None)
    kind = "syntax error" if error.__class__.__name__ == "TemplateSyntaxError" else "error"
    suffix = f" (template line {line})" if line and line > 1 else ""
    return f"template {kind}: {message}{suffix}"


# -- references -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class References:
    """What a template reads: ``inputs.<name>`` and ``steps.<id>``."""

    inputs: frozenset[str]
    steps: frozenset[str]


def references(source: str) -> References:
    """The inputs and steps a compiled template refers to by name (``inputs.x``, ``inputs['x']``,
    ``steps.a.output``); dynamic lookups are not followed."""
    if not is_template(source):
        return References(frozenset(), frozenset())
    match = _WHOLE_EXPRESSION.match(source)
    text = "{{" + match.group("expr") + "}}" if match else source
    try:
        tree = _ENV.parse(text)
    except JinjaTemplateError as e:
        raise TemplateError(_describe(e)) from None
    found: dict[str, set[str]] = {"inputs": set(), "steps": set()}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = getattr(node, "node", None)
        if isinstance(target, nodes.Name) and target.name in found:
            if isinstance(node, nodes.Getattr):
                found[target.name].add(node.attr)
            elif isinstance(node, nodes.Getitem):
                arg = node.arg
                if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
                    found[target.name].add(arg.value)
    return References(frozenset(found["inputs"]), frozenset(found["steps"]))


def strings_in(value: Any) -> Iterator[str]:
    """Every string inside ``value`` (dict keys too)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from strings_in(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings_in(k)
            yield from strings_in(v)
