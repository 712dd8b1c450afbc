"""Which kinds this deployment can run, and their declared defaults."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from faena.domain.errors import ValidationError
from faena.ports.executor import KindDefaults

PayloadValidator = Callable[[str, Any], None]


class KindCatalog:
    """The union of kinds offered by the executors known to this server.

    A job of a kind nobody serves would wait forever, so a ``strict`` catalog (one process owns
    the store: SQLite, memory) refuses it with the list of kinds that are served. With a shared
    store, other servers may serve kinds this one does not, so only the payloads of the kinds
    known here are checked.
    """

    def __init__(
        self, validate_payload: PayloadValidator | None = None, *, strict: bool = True
    ) -> None:
        self._sources: list[Callable[[], Iterable[str]]] = []
        self._defaults: list[Callable[[str], KindDefaults | None]] = []
        self._validate = validate_payload
        self._missing: dict[str, str] = {}
        self.strict = strict

    def add_source(
        self,
        kinds: Callable[[], Iterable[str]],
        defaults: Callable[[str], KindDefaults | None] | None = None,
    ) -> None:
        self._sources.append(kinds)
        if defaults is not None:
            self._defaults.append(defaults)

    def explain_missing(self, kind: str, reason: str) -> None:
        """Say why ``kind`` is not served here (an extra not installed), for the refusal."""
        self._missing[kind] = reason

    def kinds(self) -> frozenset[str]:
        out: set[str] = set()
        for source in self._sources:
            out.update(source())
        return frozenset(out)

    def defaults(self, kind: str) -> KindDefaults | None:
        for lookup in self._defaults:
            found = lookup(kind)
            if found is not None:
                return found
        return None

    def check(self, kind: str, payload: Any, known: frozenset[str] | None = None) -> None:
        """Refuse a kind nobody serves (strict) or a bad payload. ``known``: a snapshot of
        :meth:`kinds` taken once for a whole batch (it is a union over every source)."""
        if known is None:
            known = self.kinds()
        if kind not in known and kind in self._missing:
            raise ValidationError(f"kind {kind!r} is not available here: {self._missing[kind]}")
        if kind not in known and self.strict:
            listed = ", ".join(sorted(known)) or "none: start a worker"
            raise ValidationError(f"unknown kind {kind!r}; kinds served here: {listed}")
        if self._validate is not None and kind in known:
            self._validate(kind, payload)
