"""validate_payload: a built-in kind's payload is checked at submit, with a precise message."""

from __future__ import annotations

from typing import Any

import pytest

from faena.domain.errors import ValidationError
from faena.worker.kinds import BUILTIN_KINDS, validate_payload


def test_the_builtin_kinds() -> None:
    assert sorted(BUILTIN_KINDS) == ["http", "noop", "shell", "sleep"]


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        ("noop", None),
        ("noop", {"anything": [1, 2]}),
        ("sleep", {"seconds": 0}),
        ("sleep", {"seconds": 1.5}),
        ("sleep", {"seconds": 86400}),
        ("shell", {"command": "echo hi"}),
        ("shell", {"command": ["ls", "-l"], "env": {"A": "1"}, "cwd": "/tmp"}),
        ("http", {"url": "https://example.org/x?y=1"}),
        (
            "http",
            {
                "method": "post",
                "url": "http://127.0.0.1:8000/hook",
                "headers": {"X-Key": "v"},
                "json": {"a": [1]},
                "timeout_s": 5,
                "follow_redirects": False,
            },
        ),
        ("http", {"method": "PUT", "url": "http://h/", "body": "raw"}),
        ("my_task", {"whatever": True}),
    ],
)
def test_a_good_payload_is_accepted(kind: str, payload: Any) -> None:
    validate_payload(kind, payload)


@pytest.mark.parametrize(
    ("kind", "payload", "message"),
    [
        ("sleep", None, "sleep payload must be an object with 'seconds'"),
        ("sleep", {}, "sleep payload: 'seconds' is required"),
        ("sleep", {"seconds": "1"}, "sleep payload: 'seconds' must be a number"),
        ("sleep", {"seconds": True}, "sleep payload: 'seconds' must be a number"),
        ("sleep", {"seconds": float("nan")}, "sleep payload: 'seconds' must be a number"),
        ("sleep", {"seconds": -1}, "sleep payload: 'seconds' must be between 0 and 86400"),
        ("sleep", {"seconds": 86401}, "sleep payload: 'seconds' must be between 0 and 86400"),
        (
            "sleep",
            {"seconds": 1, "secs": 2},
            "sleep payload: unknown field 'secs'; expected seconds",
        ),
        ("shell", "echo hi", "shell payload must be an object with 'command'"),
        ("shell", {"command": ""}, "shell payload: 'command' must not be empty"),
        ("shell", {"command": []}, "shell payload: 'command' must not be an empty list"),
        ("shell", {"command": ["ls", 3]}, "as a list must hold only strings"),
        ("shell", {"command": 3}, "'command' must be a string (run by /bin/sh -c) or a list"),
        ("shell", {"command": "ls", "env": {"A": 1}}, "'env' must be an object mapping"),
        ("shell", {"command": "ls", "env": {"A=B": "1"}}, "must not contain '='"),
        ("shell", {"command": "ls", "cwd": ""}, "'cwd' must be a non-empty path string"),
        ("shell", {"command": "ls", "timeout": 3}, "unknown field 'timeout'"),
        ("http", {}, "http payload: 'url' is required"),
        ("http", {"url": "ftp://h/x"}, "'url' must be an absolute http:// or https:// URL"),
        ("http", {"url": "/relative"}, "'url' must be an absolute http:// or https:// URL"),
        ("http", {"url": "http://h/", "method": "FETCH"}, "'method' must be one of DELETE, GET"),
        ("http", {"url": "http://h/", "json": {}, "body": ""}, "give 'json' or 'body', not both"),
        ("http", {"url": "http://h/", "body": {"a": 1}}, "'body' must be a string"),
        ("http", {"url": "http://h/", "headers": ["a"]}, "'headers' must be an object mapping"),
        ("http", {"url": "http://h/", "timeout_s": 0}, "'timeout_s' must be greater than 0"),
        ("http", {"url": "http://h/", "timeout_s": 7200}, "'timeout_s' must be between 0 and 3600"),
        ("http", {"url": "http://h/", "follow_redirects": "yes"}, "must be true or false"),
    ],
)
def test_a_bad_payload_is_refused_with_what_to_fix(kind: str, payload: Any, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        validate_payload(kind, payload)
    assert message in raised.value.message
