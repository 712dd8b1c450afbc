"""How the composition root builds telemetry and hooks it to a runtime's services.

Kept here so ``faena.bootstrap`` gains a few lines only; this module knows the runtime's
parts (pool, log writer, completer, worker plane) but nothing reads it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faena.config import Settings
from faena.observability.families import Labels
from faena.observability.metrics import Metrics
from faena.observability.readiness import OK, Readiness, task_alive
from faena.observability.telemetry import Telemetry
from faena.observability.tracing import Tracing, otlp_provider, tracing_wanted

REAPER_STALE_PASSES = 5  # the reaper is stuck after this many intervals without a pass
MIB = 1024.0 * 1024.0


def build_telemetry(settings: Settings, env: Mapping[str, str]) -> Telemetry:
    """Metrics always; tracing when ``FAENA_TRACING``/``OTEL_*`` ask for it."""
    from faena import __version__

    tracing = None
    if tracing_wanted(settings.tracing, env):
        tracing = Tracing(otlp_provider(__version__), store_sample=settings.trace_store_sample)
    return Telemetry(Metrics(), tracing, metrics_on=settings.metrics)


def agent_telemetry(tracing_setting: str, env: Mapping[str, str]) -> Telemetry:
    """A remote agent's observer: no metrics (the server counts its jobs), a span per attempt
    when tracing is on (``FAENA_TRACING``/``OTEL_*``, as for a server), continuing the
    ``traceparent`` that comes with each assignment."""
    from faena import __version__

    tracing = None
    if tracing_wanted(tracing_setting, env):
        tracing = Tracing(otlp_provider(__version__), store_sample=0.0)
    return Telemetry(Metrics(), tracing, metrics_on=False)


def observe_runtime(runtime: Any) -> None:
    """Point the pool at the observer, register scrape-time gauges and the readiness checks."""
    telemetry: Telemetry = runtime.telemetry
    metrics = telemetry.metrics
    metrics.set_depth_source(runtime.store)
    pool = runtime.pool
    if pool is not None:
        pool.set_observer(telemetry)

    def backlogs() -> dict[Labels, float]:
        return {
            ("logs",): float(runtime.logs.backlog),
            ("completions",): float(runtime.completer.backlog),
        }

    metrics.add_gauge(
        "faena_backlog",
        "Items waiting for their group-committed write (log chunks, attempt outcomes).",
        ("pipeline",),
        backlogs,
    )
    if pool is not None:
        metrics.add_gauge(
            "faena_pool_slots",
            "Slots of this process's local pool, by use (running, total).",
            ("use",),
            lambda: {
                ("running",): float(pool.running),
                ("total",): float(pool.config.concurrency),
            },
        )
    _webhook_gauges(metrics, runtime.store)
    plane = runtime.workers_plane
    if plane is not None and hasattr(plane, "registry"):
        _worker_gauges(metrics, plane.registry)
    manager = getattr(plane, "manager", None)
    if manager is not None and hasattr(manager, "set_observer"):
        manager.set_observer(telemetry)  # starts on remote workers count too
    runtime.readiness = Readiness(runtime.store, _loops(runtime))


def _webhook_gauges(metrics: Metrics, store: Any) -> None:
    """The relay's backlog, from the store (every server sees the whole deployment's)."""

    async def read() -> dict[str, float]:
        backlog = await store.delivery_backlog()
        return {
            "faena_outbox_backlog": float(backlog.outbox),
            "faena_webhook_deliveries_pending": float(backlog.pending),
        }

    metrics.add_async_gauges(
        read,
        {
            "faena_outbox_backlog": "Events in the outbox not yet turned into webhook deliveries.",
            "faena_webhook_deliveries_pending": (
                "Webhook deliveries waiting for their first or next attempt (not delivered, "
                "not dead)."
            ),
        },
    )


def _worker_gauges(metrics: Metrics, registry: Any) -> None:
    def connected() -> dict[Labels, float]:
        counts: dict[Labels, float] = {}
        for w in registry.live_cached():
            key = (str(getattr(w.kind, "value", w.kind)),)
            counts[key] = counts.get(key, 0.0) + 1
        return counts

    def usage(attribute: str, scale: float = 1.0) -> dict[Labels, float]:
        return {(w.id,): getattr(w.load, attribute) * scale for w in registry.live_cached()}

    metrics.add_gauge(
        "faena_workers_connected",
        "Live workers known to the registry, by kind.",
        ("kind",),
        connected,
    )
    # Base units: the heartbeat's percentages of the machine as ratios (0-1). Used memory is
    # not known in bytes (the worker protocol and the registry carry a percentage); what a
    # worker offers is, from its registration.
    metrics.add_gauge(
        "faena_worker_cpu_usage_ratio",
        "CPU use of each live worker's machine, 0-1, as its last heartbeat reported.",
        ("worker",),
        lambda: usage("cpu_percent", 0.01),
    )
    metrics.add_gauge(
        "faena_worker_memory_usage_ratio",
        "Memory in use on each live worker's machine, 0-1, as its last heartbeat reported.",
        ("worker",),
        lambda: usage("memory_percent", 0.01),
    )
    metrics.add_gauge(
        "faena_worker_memory_capacity_bytes",
        "Memory each live worker offers to jobs' resources (default: its machine's memory).",
        ("worker",),
        lambda: {(w.id,): float(w.capacity.memory_mb) * MIB for w in registry.live_cached()},
    )
    metrics.add_gauge(
        "faena_worker_running_jobs",
        "Jobs each live worker reported running.",
        ("worker",),
        lambda: usage("running"),
    )


def _loops(runtime: Any) -> dict[str, Any]:
    loops: dict[str, Any] = {}
    pool = runtime.pool
    if pool is not None:
        loops["pool"] = lambda: OK if pool.alive else "the pool's loops are not running"
    reaper = runtime.reaper

    def reaper_state() -> str:
        state = task_alive(runtime._reaper_task)
        if state != OK:
            return state
        import asyncio

        last = reaper.last_pass
        stale = REAPER_STALE_PASSES * max(reaper._interval_s, 1.0)
        if last is not None and asyncio.get_running_loop().time() - last > stale:
            return f"no pass for more than {stale:g}s"
        return OK

    loops["reaper"] = reaper_state
    if runtime.retention is not None:
        loops["retention"] = lambda: task_alive(runtime._retention_task)
    automation = runtime.automation
    webhooks = getattr(automation, "webhooks", None)
    if webhooks is not None:

        def relay() -> str:
            tasks = getattr(webhooks, "_tasks", None)
            if not tasks:
                return "not started"
            return next((s for s in map(task_alive, tasks) if s != OK), OK)

        loops["relay"] = relay
    feed = runtime.feed
    if feed is not None:
        loops["change_feed"] = lambda: OK if feed.connected else "not connected (reconnecting)"
    return loops


def observe_rate_limits(telemetry: Telemetry, limits: Any) -> None:
    """Requests refused by rate limits, by bucket, and the takes a shared backend (Redis)
    could not answer, which were allowed (the limits fail open)."""
    metrics = telemetry.metrics
    metrics.add_counter(
        "faena_rate_limited_requests",
        "Requests refused with 429, by bucket (key, ip, bulk, health, auth_failures).",
        ("bucket",),
        lambda: {(bucket,): float(n) for bucket, n in limits.counts.refused.items()},
    )
    metrics.add_counter(
        "faena_rate_limit_backend_errors",
        "Rate-limit checks the shared backend (Redis) could not answer; each request was allowed.",
        (),
        lambda: {(): float(getattr(limits.limiter, "errors", 0))},
    )
