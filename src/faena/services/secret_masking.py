"""Masking of the secrets handed to one job, in what its run sends back (logs, result, error),
before any of it is stored, published or shown."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faena.domain.logs import LogStream
from faena.ports.executor import ExecutionSink, OutcomeLike
from faena.worker.masking import SecretMasker, StreamMasker


class MaskedSink:
    """An :class:`ExecutionSink` that masks each stream on its way to ``inner``; a secret split
    across two chunks is masked too (the end of a chunk is held back until the next one), so
    :meth:`flush` must be called when the run ends."""

    __slots__ = ("_inner", "_masker", "_streams")

    def __init__(self, inner: ExecutionSink, masker: SecretMasker) -> None:
        self._inner = inner
        self._masker = masker
        self._streams: dict[LogStream, StreamMasker] = {}

    def log(self, stream: LogStream, data: str) -> None:
        if not data:
            return
        stream = LogStream(stream)
        masker = self._streams.get(stream)
        if masker is None:
            masker = self._streams[stream] = StreamMasker(self._masker)
        text = masker.feed(data)
        if text:
            self._inner.log(stream, text)

    def flush(self) -> None:
        for stream, masker in self._streams.items():
            text = masker.flush()
            if text:
                self._inner.log(stream, text)

    def progress(self, fraction: float, message: str = "") -> None:
        report = getattr(self._inner, "progress", None)
        if report is not None:
            report(fraction, self._masker.mask(message))


@dataclass(frozen=True, slots=True)
class MaskedOutcome:
    succeeded: bool
    result: Any
    error: str | None
    retryable: bool


def mask_outcome(outcome: OutcomeLike, masker: SecretMasker) -> OutcomeLike:
    """``outcome`` with every secret in its result and error masked."""
    return MaskedOutcome(
        succeeded=outcome.succeeded,
        result=masker.mask_value(outcome.result),
        error=None if outcome.error is None else masker.mask(outcome.error),
        retryable=outcome.retryable,
    )
