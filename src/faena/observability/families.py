"""Lock-free metric families for the event loop.

prometheus-client's own ``Counter``/``Histogram`` take a lock on every increment and resolve
labels on every call. faena records from one thread (the event loop) and in batches, so plain
dicts of floats do: a family is a dict from a label tuple to its value, turned into
prometheus-client's metric families only when ``/metrics`` is scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

Labels = tuple[str, ...]

# Seconds: from a millisecond (store calls, submit→start on an idle server) to an hour.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0
)  # fmt: skip


@dataclass(slots=True)
class CounterFamily:
    name: str  # without ``_total``: prometheus-client appends it
    documentation: str
    labelnames: Labels
    values: dict[Labels, float] = field(default_factory=dict)

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self.values.get(labels, 0.0)

    def collect(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in sorted(self.values.items()):
            family.add_metric(labels, value)
        return family


@dataclass(slots=True)
class _Series:
    counts: list[int]  # per bucket, not cumulative; the last one is +Inf
    total: float = 0.0


@dataclass(slots=True)
class HistogramFamily:
    name: str
    documentation: str
    labelnames: Labels
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    series: dict[Labels, _Series] = field(default_factory=dict)

    def _get(self, labels: Labels) -> _Series:
        found = self.series.get(labels)
        if found is None:
            found = self.series[labels] = _Series([0] * (len(self.buckets) + 1))
        return found

    def observe(self, labels: Labels, value: float) -> None:
        series = self._get(labels)
        series.counts[bisect_left(self.buckets, value)] += 1
        series.total += value

    def observe_many(self, labels: Labels, values: Iterable[float]) -> None:
        series = self._get(labels)
        counts, buckets = series.counts, self.buckets
        for value in values:
            counts[bisect_left(buckets, value)] += 1
            series.total += value

    def count(self, *labels: str) -> int:
        found = self.series.get(labels)
        return 0 if found is None else sum(found.counts)

    def collect(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        bounds = [*(repr(float(b)) for b in self.buckets), "+Inf"]
        for labels, series in sorted(self.series.items()):
            cumulative, running = [], 0
            for bound, n in zip(bounds, series.counts, strict=True):
                running += n
                cumulative.append((bound, float(running)))
            family.add_metric(labels, cumulative, series.total)
        return family


def gauge(name: str, documentation: str, labelnames: Labels, values: dict[Labels, float]) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=labelnames)
    for labels, value in sorted(values.items()):
        family.add_metric(labels, value)
    return family


def counter(
    name: str, documentation: str, labelnames: Labels, values: dict[Labels, float]
) -> Metric:
    """A counter read at scrape time (``name`` without ``_total``: prometheus-client adds it)."""
    family = CounterMetricFamily(name, documentation, labels=labelnames)
    for labels, value in sorted(values.items()):
        family.add_metric(labels, value)
    return family


def collect_all(families: Iterable[CounterFamily | HistogramFamily]) -> Iterator[Metric]:
    for family in families:
        yield family.collect()
