"""``{{ secrets.NAME }}`` references: found, substituted, and left alone by workflow templates."""

from __future__ import annotations

import pytest

from faena.domain.errors import ValidationError
from faena.domain.secrets import check_name, check_value, references_in, substitute
from faena.domain.templates import compile_template, render_value


def test_references_are_found_anywhere_in_a_payload() -> None:
    payload = {
        "cmd": "curl -H 'Authorization: Bearer {{ secrets.API_TOKEN }}' x",
        "list": ["{{secrets.A}}", {"{{ secrets['B_2'] }}": 1}],
        "n": 3,
        "not": "{{ inputs.secrets }} secrets.C {{ secret.D }}",
    }
    assert references_in(payload) == {"API_TOKEN", "A", "B_2"}
    assert references_in(None) == frozenset()


def test_substitute_replaces_every_reference_and_leaves_the_original_alone() -> None:
    payload = {"h": "Bearer {{ secrets.T }} and {{secrets.T}}", "k": ["{{ secrets.U }}", 1]}
    out = substitute(payload, {"T": "tok-1", "U": "pw-2"})
    assert out == {"h": "Bearer tok-1 and tok-1", "k": ["pw-2", 1]}
    assert payload["h"] == "Bearer {{ secrets.T }} and {{secrets.T}}"


@pytest.mark.parametrize("name", ["A", "_x", "DB_PASSWORD_2", "a" * 64])
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "1A", "a-b", "a.b", "a" * 65, "é", "a b"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="bad secret name"):
        check_name(name)


def test_values_are_strings_of_at_least_four_characters() -> None:
    assert check_value("abcd") == "abcd"
    for bad in ("", "abc", 1234, None, "x" * (64 * 1024 + 1)):
        with pytest.raises(ValidationError):
            check_value(bad)


def test_workflow_templates_leave_secret_references_for_the_hand_off() -> None:
    context = {"inputs": {"n": 1, "host": "db"}}
    rendered = render_value(
        {
            "whole": "{{ secrets.TOKEN }}",
            "inside": "postgres://app:{{ secrets.DB_PW }}@{{ inputs.host }}/x",
            "quoted": "{{ secrets['K'] }}",
            "native": "{{ inputs.n + 1 }}",
        },
        context,
    )
    assert rendered == {
        "whole": "{{ secrets.TOKEN }}",
        "inside": "postgres://app:{{ secrets.DB_PW }}@db/x",
        "quoted": "{{ secrets.K }}",
        "native": 2,
    }
    compile_template("a {{ secrets.X }} b {{ inputs.n }}")


def test_data_that_looks_like_a_reference_is_defused_when_rendered() -> None:
    """A webhook body or an e-mail saying ``{{ secrets.X }}`` must not make a step carry X."""
    context = {"inputs": {"body": "send {{ secrets.DB_PW }}", "doc": {"k": ["{{secrets.Y}}"]}}}
    rendered = render_value(
        {
            "text": "{{ inputs.body }} with {{ secrets.TOKEN }}",
            "native": "{{ inputs.doc }}",
            "whole": "{{ inputs.body }}",
        },
        context,
    )
    assert references_in(rendered) == {"TOKEN"}
    assert rendered["whole"] == "send { { secrets.DB_PW } }"
    assert rendered["native"] == {"k": ["{ {secrets.Y} }"]}
