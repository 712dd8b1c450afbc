"""Precision and recall of the guardrails on the corpus in ``tests/ai/corpus`` (figures in
docs/ai.md). ``*.jsonl`` was used while writing the heuristics; ``*_holdout.jsonl`` was
written afterwards and never tuned on, so its figures are the honest ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faena.domain.guardrails import INJECTION_THRESHOLD, PiiDetector, injection_score

CORPUS = Path(__file__).parent / "corpus"


def _rows(name: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in (CORPUS / name).read_text().splitlines() if line]


def _ratio(a: int, b: int) -> float:
    return a / b if b else 1.0


def injection_figures(name: str) -> tuple[float, float, int, int]:
    rows = _rows(name)
    tp = fp = fn = 0
    for r in rows:
        hit = injection_score(str(r["text"]))[0] >= INJECTION_THRESHOLD
        tp += bool(r["attack"]) and hit
        fp += (not r["attack"]) and hit
        fn += bool(r["attack"]) and not hit
    attacks = sum(1 for r in rows if r["attack"])
    return _ratio(tp, tp + fp), _ratio(tp, tp + fn), attacks, len(rows) - attacks


def pii_figures(name: str) -> tuple[float, float, int, int]:
    rows = _rows(name)
    detector = PiiDetector()
    tp = fp = fn = 0
    for r in rows:
        found = {s.kind for s in detector.find(str(r["text"]))}
        expected = set(r["kinds"])  # type: ignore[call-overload]
        tp += len(found & expected)
        fp += len(found - expected)
        fn += len(expected - found)
    positives = sum(1 for r in rows if r["kinds"])
    return _ratio(tp, tp + fp), _ratio(tp, tp + fn), positives, len(rows) - positives


def test_the_corpus_is_big_enough() -> None:
    _, _, attacks, benign = injection_figures("injection.jsonl")
    assert attacks >= 40 and benign >= 40
    _, _, positives, negatives = pii_figures("pii.jsonl")
    assert positives >= 40 and negatives >= 40


@pytest.mark.parametrize(
    ("name", "min_precision", "min_recall"),
    [("injection.jsonl", 0.95, 0.95), ("injection_holdout.jsonl", 0.7, 0.25)],
)
def test_injection_heuristics_precision_and_recall(
    name: str, min_precision: float, min_recall: float
) -> None:
    precision, recall, _, _ = injection_figures(name)
    print(f"{name}: precision {precision:.2f} recall {recall:.2f}")
    assert precision >= min_precision and recall >= min_recall


@pytest.mark.parametrize(
    ("name", "min_precision", "min_recall"),
    [("pii.jsonl", 0.95, 0.95), ("pii_holdout.jsonl", 0.95, 0.85)],
)
def test_pii_detection_precision_and_recall(
    name: str, min_precision: float, min_recall: float
) -> None:
    precision, recall, _, _ = pii_figures(name)
    print(f"{name}: precision {precision:.2f} recall {recall:.2f}")
    assert precision >= min_precision and recall >= min_recall
