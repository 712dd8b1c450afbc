"""Workflow definitions, templates, cron and signatures: pure functions, no store."""

from __future__ import annotations

import pytest

import faena
from faena.domain.cron import check_cron, next_tick
from faena.domain.errors import ValidationError
from faena.domain.signatures import sign, verify
from faena.domain.templates import TemplateError, references, render_string, render_value
from faena.domain.workflows import load_yaml, parse_workflow

YAML = """
name: invoice-intake
inputs: {document_url: {type: string, default: "http://x/a.pdf"}}
schedule: {cron: "0 7 * * 1-5", timezone: Europe/Madrid, catch_up: false}
steps:
  - id: text
    kind: ocr
    with: {url: "{{ inputs.document_url }}"}
  - id: total
    kind: extract_total
    needs: [text]
    with: {text: "{{ steps.text.output.text }}"}
  - id: tell
    kind: notify.webhook
    needs: [total]
    when: "{{ steps.total.output.amount > 1000 }}"
    retries: 3
    with: {body: {amount: "{{ steps.total.output.amount }}"}}
"""


def test_the_python_builder_gives_the_yaml_definition() -> None:
    wf = faena.workflow(
        "invoice-intake",
        inputs={"document_url": {"type": "string", "default": "http://x/a.pdf"}},
        schedule={"cron": "0 7 * * 1-5", "timezone": "Europe/Madrid", "catch_up": False},
    )
    text = wf.step("text", "ocr", with_={"url": "{{ inputs.document_url }}"})
    total = wf.step("total", "extract_total", needs=[text], with_={"text": text.output("text")})
    wf.step(
        "tell",
        "notify.webhook",
        needs=[total],
        when=total.expr("output.amount > 1000"),
        retries=3,
        with_={"body": {"amount": total.output("amount")}},
    )
    from_yaml = parse_workflow(load_yaml(YAML)).to_dict()
    assert wf.to_dict() == from_yaml
    assert parse_workflow(load_yaml(wf.to_yaml())).to_dict() == from_yaml
    assert parse_workflow(from_yaml).to_dict() == from_yaml  # the stored form round-trips


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "name: w\nsteps:\n  - {id: a, kind: x}\n  - {id: b, kind: x, needs: [a, c]}\n",
            "step 'b' (line 4): needs unknown step 'c'",
        ),
        (
            "name: w\nsteps:\n  - {id: a, kind: x, needs: [b]}\n  - {id: b, kind: x, needs: [a]}\n",
            "dependency cycle a -> b -> a",
        ),
        (
            "name: w\nsteps:\n  - {id: a, kind: x, with: {v: '{{ steps.b.output }}'}}\n"
            "  - {id: b, kind: x}\n",
            "reads steps.b, a step it does not need",
        ),
        ("name: w\nsteps:\n  - {id: a, kind: x, with: {v: '{% for %}'}}\n", "syntax error"),
        ("name: w\nsteps:\n  - {id: a, kind: x, retries: -1}\n", "'retries' must be"),
        ("name: w\nsteps:\n  - {id: 1a, kind: x}\n", "'id' must be"),
        ("name: w\nsteps:\n  - {id: a, kind: x, bogus: 1}\n", "unknown field 'bogus'"),
        ("name: w\nsteps:\n  - {id: a, kind: x, max_parallel: 2}\n", "needs 'for_each'"),
        ("name: w\ninputs: {x: complex}\nsteps: [{id: a, kind: x}]\n", "unknown type"),
        (
            "name: w\ninputs: {x: {type: integer, default: a}}\nsteps: [{id: a, kind: x}]\n",
            "default",
        ),
        ("name: w\non_failure: maybe\nsteps: [{id: a, kind: x}]\n", "on_failure"),
        ("name: w\nsteps: []\n", "non-empty list"),
        ("[1, 2]", "a workflow must be a mapping"),
        (
            "name: w\ntriggers: [{on: run, workflow: w}]\nsteps: [{id: a, kind: x}]\n",
            "its own runs",
        ),
    ],
)
def test_invalid_definitions_are_refused_with_the_step_and_line(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_workflow(load_yaml(text))


def test_unknown_kinds_are_refused_when_kinds_are_known() -> None:
    with pytest.raises(ValidationError, match="step 'a' \\(line 3\\): unknown kind 'x'"):
        parse_workflow(load_yaml("name: w\nsteps:\n  - {id: a, kind: x}\n"), known_kinds={"y"})


def test_whole_expressions_keep_their_type_and_text_renders_as_text() -> None:
    ctx = {"inputs": {"n": 2, "items": [1, 2]}, "steps": {}}
    assert render_value({"a": "{{ inputs.n }}", "b": "n={{ inputs.n }}"}, ctx) == {
        "a": 2,
        "b": "n=2",
    }
    assert render_string("{{ inputs.items }}", ctx) == [1, 2]  # a key wins over dict.items
    assert render_string("{{ inputs.n > 1 }}", ctx) is True


@pytest.mark.parametrize(
    "template",
    [
        "{{ inputs.__class__ }}",
        "{{ inputs.n.__class__.__mro__ }}",
        "{{ inputs.pop('n') }}",
        "{{ 'x' * 100000000 }}",
        "{{ 10 ** 1000 }}",
        "{{ range(100000000) | list }}",
        "{{ missing }}",
        "{{ inputs.n / 0 }}",
    ],
)
def test_the_sandbox_refuses_internals_mutation_and_huge_values(template: str) -> None:
    with pytest.raises(TemplateError):
        render_string(template, {"inputs": {"n": 2}})


def test_references_name_inputs_and_steps() -> None:
    refs = references("{{ inputs.a }} {{ inputs['b'] }} {{ steps.c.output.d + steps['e'].x }}")
    assert refs.inputs == {"a", "b"} and refs.steps == {"c", "e"}


def test_cron_ticks_follow_the_time_zone_across_daylight_saving() -> None:
    check_cron("0 7 * * 1-5", "Europe/Madrid")
    friday_evening = 1774627200.0  # 2026-03-27 16:00 UTC, DST starts on Sunday the 29th
    monday = next_tick("0 7 * * 1-5", "Europe/Madrid", friday_evening)
    assert monday == 1774846800.0  # 2026-03-30 05:00 UTC = 07:00 CEST
    for bad in ("* * * *", "* * * * * *", "60 * * * *", "a b c d e"):
        with pytest.raises(ValidationError):
            check_cron(bad)


def test_signatures_verify_and_refuse_tampering_and_replays() -> None:
    body = b'{"a": 1}'
    signature = sign("s3cret", 1000, body)
    assert verify("s3cret", "1000", signature, body, now=1100) is None
    assert verify("s3cret", "1000", signature, body + b" ", now=1100) is not None
    assert verify("other", "1000", signature, body, now=1100) is not None
    assert verify("s3cret", "1000", signature, body, now=5000) is not None
    assert verify("s3cret", None, signature, body, now=1000) is not None
