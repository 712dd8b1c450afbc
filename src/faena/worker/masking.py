"""Secret masking: known secret values become ``****`` in what leaves a worker.

A :class:`SecretMasker` finds every secret in one pass over the text (Aho-Corasick, through
``pyahocorasick``). Logs arrive in chunks, so a :class:`StreamMasker` per output stream holds
back the end of a chunk that could be the start of a secret until the next chunk (or the end
of the job) tells, so a secret split across two chunks is masked too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import ahocorasick

MASK = "****"
MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words
_SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY|CREDENTIAL", re.I)


def secret_environment(env: Mapping[str, str], names: Iterable[str] = ()) -> list[str]:
    """The values of ``env`` that are secrets: variables named like one (``*_TOKEN``,
    ``*SECRET*``, ``*PASSWORD*``, ``*API_KEY*``...) and the ones in ``names``."""
    wanted = set(names)
    return [
        value
        for name, value in env.items()
        if (name in wanted or _SECRET_NAME.search(name)) and len(value) >= MIN_SECRET_LENGTH
    ]


class SecretMasker:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH})
        self._automaton: Any = None
        self._prefixes: frozenset[str] = frozenset()
        self.longest = 0
        if self._secrets:
            automaton = ahocorasick.Automaton()
            for secret in self._secrets:
                automaton.add_word(secret, len(secret))
            automaton.make_automaton()
            self._automaton = automaton
            self._prefixes = frozenset(s[:i] for s in self._secrets for i in range(1, len(s)))
            self.longest = max(len(s) for s in self._secrets)

    def __bool__(self) -> bool:
        return self._automaton is not None

    def with_secrets(self, more: Iterable[str]) -> SecretMasker:
        return SecretMasker([*self._secrets, *more])

    def mask(self, text: str) -> str:
        if self._automaton is None or not text:
            return text
        spans: list[tuple[int, int]] = []
        for end, length in self._automaton.iter(text):
            start = end - length + 1
            if spans and start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(spans[-1][1], end + 1))
            else:
                spans.append((start, end + 1))
        if not spans:
            return text
        spans.sort()
        out: list[str] = []
        pos = 0
        for start, end in spans:
            if end <= pos:
                continue
            out.append(text[pos : max(pos, start)])
            out.append(MASK)
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def unsafe_tail(self, text: str) -> int:
        """How many characters at the end of ``text`` could begin a secret."""
        if not self._prefixes:
            return 0
        for k in range(min(self.longest - 1, len(text)), 0, -1):
            if text[-k:] in self._prefixes:
                return k
        return 0

    def mask_value(self, value: Any) -> Any:
        """A JSON value with every string in it masked."""
        if self._automaton is None:
            return value
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, list):
            return [self.mask_value(v) for v in value]
        if isinstance(value, dict):
            return {self.mask(str(k)): self.mask_value(v) for k, v in value.items()}
        return value


class StreamMasker:
    """Masks one output stream chunk by chunk; :meth:`flush` returns what is held back."""

    __slots__ = ("_held", "_masker")

    def __init__(self, masker: SecretMasker) -> None:
        self._masker = masker
        self._held = ""

    def feed(self, data: str) -> str:
        if not self._masker:
            return data
        text = self._held + data
        keep = self._masker.unsafe_tail(text)
        ready, self._held = (text[:-keep], text[-keep:]) if keep else (text, "")
        masked = self._masker.mask(text)
        if not keep:
            return masked
        # Mask the whole text (a secret may end inside the held part), then cut it where the
        # held part starts: only whole matches are replaced, so re-mask the ready part alone
        # unless a match crosses the cut.
        if masked.endswith(self._held) and self._masker.mask(ready) + self._held == masked:
            return self._masker.mask(ready)
        self._held = ""
        return masked

    def flush(self) -> str:
        held, self._held = self._held, ""
        return self._masker.mask(held)
