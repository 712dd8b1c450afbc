"""Observability: Prometheus metrics, OpenTelemetry tracing, log context and readiness.

The services report through :mod:`faena.ports.telemetry`; this package turns those reports
into metrics and spans. The composition root builds one :class:`Telemetry` per process.
"""

from faena.observability.metrics import Metrics
from faena.observability.telemetry import Telemetry

__all__ = ["Metrics", "Telemetry"]
