"""The built-in kinds: ``noop``, ``sleep``, ``shell`` and ``http``.

:func:`validate_payload` checks a built-in kind's payload without running anything, so the API
can refuse a bad one at submit with a precise message.
"""

from __future__ import annotations

from typing import Any

BUILTIN_KINDS = frozenset({"noop", "sleep", "shell", "http"})

__all__ = ["BUILTIN_KINDS", "validate_payload"]


def validate_payload(kind: str, payload: Any) -> None:
    """Raise :class:`faena.domain.errors.ValidationError` if ``payload`` is wrong for ``kind``.

    Only built-in kinds are checked (``noop`` accepts anything); a registered task's payload is
    checked against its signature when it runs.
    """
    # Imported here so that the registry, which needs only BUILTIN_KINDS, stays cheap to import.
    from faena.worker.kinds.payloads import parse_http, parse_shell, parse_sleep

    if kind == "sleep":
        parse_sleep(payload)
    elif kind == "shell":
        parse_shell(payload)
    elif kind == "http":
        parse_http(payload)
