"""Prompt-injection classifiers for ``FAENA_LLM_INJECTION_CLASSIFIER`` in the tests."""

from __future__ import annotations

from collections.abc import Sequence


def shouting(text: str) -> tuple[float, Sequence[str]]:
    """Flags text written in capitals (a stand-in for a trained model)."""
    letters = [c for c in text if c.isalpha()]
    if letters and all(c.isupper() for c in letters):
        return 0.9, ["all capitals"]
    return 0.0, []


class Keyword:
    """A class: instantiated once by the composition root, its instances are the classifier."""

    def __call__(self, text: str) -> tuple[float, Sequence[str]]:
        return (1.0, ["says xyzzy"]) if "xyzzy" in text else (0.0, [])


def broken(text: str) -> tuple[float, Sequence[str]]:
    raise RuntimeError("model not loaded")
