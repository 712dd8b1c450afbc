"""faena's Prometheus metrics: what the services report, plus gauges computed at scrape time.

Counters and histograms are plain dicts updated on the event loop, once per batch the
services already make (see :mod:`faena.observability.families`). Queue depths come from one
grouped store query when ``/metrics`` is scraped, cached for ``depth_ttl_s`` so several
scrapers (or a dashboard) cost one query a second at most.

Each faena process serves its own ``/metrics`` (``faena up``/``faena server`` run the API, the
pool and the reaper in one process). The child processes faena starts — the ``cpu=True`` task
pool and the document kinds' pool, both from a fork server, never forked from the server —
run task and reader code only and record no metric: their outcomes come back to the parent,
which counts them. Run several servers: scrape each one, as Prometheus does for any replicated
service; ``PROMETHEUS_MULTIPROC_DIR`` is not needed and not used.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from faena.domain.jobs import Job, JobState
from faena.observability.families import (
    DURATION_BUCKETS,
    LATENCY_BUCKETS,
    CounterFamily,
    HistogramFamily,
    Labels,
    collect_all,
    counter,
    gauge,
)
from faena.ports.telemetry import QueueDepth

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TIMEOUT_PREFIX = "timed out after"  # faena.worker.outcome.timed_out
LEASE_PREFIX = "lease expired"
DEPTH_STATES = (JobState.QUEUED.value, JobState.SCHEDULED.value, JobState.RUNNING.value)

Gauges = Callable[[], dict[Labels, float]]


@dataclass(frozen=True, slots=True)
class GaugeSource:
    name: str
    documentation: str
    labelnames: Labels
    read: Gauges
    counter: bool = False  # a count since start that only grows (exposed as NAME_total)


class Metrics:
    def __init__(self, *, depth_ttl_s: float = 1.0, clock: Callable[[], float] = time.time):
        self._clock = clock
        self.depth_ttl_s = depth_ttl_s
        kq = ("kind", "queue")
        self.submitted = CounterFamily("faena_jobs_submitted", "Jobs stored by a submit.", kq)
        self.started = CounterFamily(
            "faena_jobs_started", "Attempts started by this process's pool.", kq
        )
        self.finished = CounterFamily(
            "faena_jobs_finished",
            "Jobs that reached a terminal state (outcome: succeeded, failed, cancelled).",
            (*kq, "outcome"),
        )
        self.retries = CounterFamily(
            "faena_job_retries", "Failed attempts that will be tried again.", kq
        )
        self.timeouts = CounterFamily("faena_job_timeouts", "Attempts stopped by timeout_s.", kq)
        self.lease_expiries = CounterFamily(
            "faena_lease_expiries", "Running jobs whose lease ended (worker gone).", ("queue",)
        )
        self.wait_seconds = HistogramFamily(
            "faena_job_wait_seconds",
            "Time from runnable (created or run_at) to the start of an attempt.",
            kq,
            DURATION_BUCKETS,
        )
        self.run_seconds = HistogramFamily(
            "faena_job_run_seconds",
            "Time from the start of an attempt to its recorded outcome.",
            kq,
            DURATION_BUCKETS,
        )
        self.http_requests = CounterFamily(
            "faena_http_requests",
            "HTTP requests by method, route template and status.",
            ("method", "route", "status"),
        )
        self.http_seconds = HistogramFamily(
            "faena_http_request_duration_seconds",
            "HTTP request latency until the response started (streams: until they end).",
            ("method", "route"),
            LATENCY_BUCKETS,
        )
        self.store_seconds = HistogramFamily(
            "faena_store_operation_duration_seconds",
            "Latency of store operations, by operation.",
            ("operation",),
            LATENCY_BUCKETS,
        )
        self.store_errors = CounterFamily(
            "faena_store_operation_errors", "Store operations that raised.", ("operation",)
        )
        self._families = (
            self.submitted,
            self.started,
            self.finished,
            self.retries,
            self.timeouts,
            self.lease_expiries,
            self.wait_seconds,
            self.run_seconds,
            self.http_requests,
            self.http_seconds,
            self.store_seconds,
            self.store_errors,
        )
        self._gauges: list[GaugeSource] = []
        self._refreshers: list[Callable[[], Awaitable[None]]] = []
        self._depths: list[QueueDepth] = []
        self._depths_at = float("-inf")
        self._depth_source: Any = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        self.registry.register(ProcessCollector(registry=None))

    # -- job reports (the JobObserver side, called by faena.observability.telemetry) ---------

    def record_submitted(self, jobs: Sequence[Job]) -> None:
        for labels, n in Counter((j.kind, j.queue) for j in jobs).items():
            self.submitted.inc(labels, n)

    def record_started(self, jobs: Sequence[Job], now: float) -> None:
        waits: dict[Labels, list[float]] = {}
        for job in jobs:
            since = job.run_at if job.run_at is not None else job.created_at
            waits.setdefault((job.kind, job.queue), []).append(max(0.0, now - since))
        for labels, values in waits.items():
            self.started.inc(labels, len(values))
            self.wait_seconds.observe_many(labels, values)

    def record_completed(self, jobs: Sequence[Job], now: float) -> None:
        runs: dict[Labels, list[float]] = {}
        outcomes: Counter[tuple[str, str, str]] = Counter()
        retries: Counter[Labels] = Counter()
        timeouts: Counter[Labels] = Counter()
        for job in jobs:
            labels: Labels = (job.kind, job.queue)
            if job.started_at is not None:
                runs.setdefault(labels, []).append(max(0.0, now - job.started_at))
            if job.state.is_terminal:
                outcomes[(job.kind, job.queue, job.state.value)] += 1
            elif job.state is not JobState.RUNNING:
                retries[labels] += 1
            if job.error is not None and job.error.startswith(TIMEOUT_PREFIX):
                timeouts[labels] += 1
        for key, values in runs.items():
            self.run_seconds.observe_many(key, values)
        for outcome, n in outcomes.items():
            self.finished.inc(outcome, n)
        for key, n in retries.items():
            self.retries.inc(key, n)
        for key, n in timeouts.items():
            self.timeouts.inc(key, n)

    def record_cancelled(self, job: Job) -> None:
        if job.state is JobState.CANCELLED:
            self.finished.inc((job.kind, job.queue, JobState.CANCELLED.value))

    def record_expired(self, jobs: Sequence[Job]) -> None:
        for queue, n in Counter(j.queue for j in jobs).items():
            self.lease_expiries.inc((queue,), n)
        for (kind, queue, state), n in Counter(
            (j.kind, j.queue, j.state.value) for j in jobs if j.state.is_terminal
        ).items():
            self.finished.inc((kind, queue, state), n)

    def record_http(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.inc((method, route, str(status)))
        self.http_seconds.observe((method, route), seconds)

    def record_store(self, operation: str, seconds: float, *, failed: bool = False) -> None:
        self.store_seconds.observe((operation,), seconds)
        if failed:
            self.store_errors.inc((operation,))

    # -- scrape-time gauges ------------------------------------------------------------------

    def add_gauge(self, name: str, documentation: str, labelnames: Labels, read: Gauges) -> None:
        """A gauge read at scrape time; ``read`` returns its value per label tuple."""
        self._gauges.append(GaugeSource(name, documentation, labelnames, read))

    def add_counter(self, name: str, documentation: str, labelnames: Labels, read: Gauges) -> None:
        """A counter kept by someone else (``read`` returns its value per label tuple, only
        ever growing), exposed at scrape time as ``NAME_total``; ``name`` has no ``_total``."""
        self._gauges.append(GaugeSource(name, documentation, labelnames, read, counter=True))

    def add_async_gauges(
        self, read: Callable[[], Awaitable[dict[str, float]]], gauges: dict[str, str]
    ) -> None:
        """Unlabelled gauges whose values come from one store read (``read`` returns them by
        name; ``gauges`` documents each), re-read at a scrape at most every ``depth_ttl_s``;
        a failed read keeps the last values (the store's own errors are counted elsewhere)."""
        values = dict.fromkeys(gauges, 0.0)
        read_at = float("-inf")

        async def refresh() -> None:
            nonlocal read_at
            now = time.monotonic()
            if now - read_at < self.depth_ttl_s:
                return
            read_at = now
            with contextlib.suppress(Exception):
                values.update(await read())

        def reader(name: str) -> Gauges:
            return lambda: {(): values[name]}

        self._refreshers.append(refresh)
        for name, documentation in gauges.items():
            self.add_gauge(name, documentation, (), reader(name))

    def set_depth_source(self, source: Any) -> None:
        """A store with ``queue_depths()`` (``faena.ports.telemetry.QueueDepthSource``)."""
        self._depth_source = source if hasattr(source, "queue_depths") else None

    async def refresh(self) -> None:
        """Re-read the queue depths (and the async gauges) if the cached ones are older than
        ``depth_ttl_s``."""
        for refresh in self._refreshers:
            await refresh()
        if self._depth_source is None:
            return
        now = time.monotonic()
        if now - self._depths_at < self.depth_ttl_s:
            return
        self._depths = await self._depth_source.queue_depths()
        self._depths_at = now

    async def render(self) -> bytes:
        await self.refresh()
        return generate_latest(self.registry)

    def _depth_metrics(self) -> Iterator[Metric]:
        depth: dict[Labels, float] = {}
        oldest: dict[Labels, float] = {}
        now = self._clock()
        for d in self._depths:
            depth[(d.queue, d.state)] = float(d.count)
            if d.state == JobState.QUEUED.value and d.oldest is not None:
                oldest[(d.queue,)] = max(0.0, now - d.oldest)
        for queue in {d.queue for d in self._depths}:
            for state in DEPTH_STATES:
                depth.setdefault((queue, state), 0.0)
            oldest.setdefault((queue,), 0.0)
        yield gauge(
            "faena_queue_depth",
            "Unfinished jobs per queue and state (queued, scheduled, running), all tenants.",
            ("queue", "state"),
            depth,
        )
        yield gauge(
            "faena_queue_oldest_age_seconds",
            "Age of the oldest queued (runnable) job per queue; 0 when none waits.",
            ("queue",),
            oldest,
        )

    def collect(self) -> Iterator[Metric]:
        yield from collect_all(self._families)
        if self._depth_source is not None:
            yield from self._depth_metrics()
        for source in self._gauges:
            family = counter if source.counter else gauge
            yield family(source.name, source.documentation, source.labelnames, source.read())


class _Collector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.collect()
