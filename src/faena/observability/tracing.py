"""OpenTelemetry tracing, off unless configured.

Spans: one per API request (``faena.observability.http``), one per job attempt in the local
pool, and store operations (sampled, only under a span that is recorded). A submitted job
stores the ``traceparent`` of the request that created it, so its attempts are children of
that request: a submit and its execution form one trace.

Configuration is OpenTelemetry's own: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) turns tracing on with the OTLP/HTTP exporter;
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` and the other
``OTEL_*`` variables are read by the SDK. ``FAENA_TRACING`` = ``auto`` (default) | ``on`` |
``off``; ``OTEL_SDK_DISABLED=true`` wins over everything.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from faena.domain.jobs import Job
from faena.ports.telemetry import NoteOutcome

_PROPAGATOR = TraceContextTextMapPropagator()
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracing_wanted(setting: str, env: Mapping[str, str]) -> bool:
    """Whether to trace, from ``FAENA_TRACING`` and the standard ``OTEL_*`` variables."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    if setting == "on":
        return True
    if setting == "off":
        return False
    return any(env.get(name) for name in ENDPOINT_VARIABLES)


def otlp_provider(service_version: str) -> Any:
    """A TracerProvider exporting over OTLP/HTTP in batches; everything else from ``OTEL_*``."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Resource.create reads OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, which win.
    resource = Resource({SERVICE_NAME: "faena", SERVICE_VERSION: service_version}).merge(
        Resource.create({})
    )
    if "unknown_service" in str(resource.attributes.get(SERVICE_NAME, "")):
        resource = resource.merge(Resource({SERVICE_NAME: "faena"}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def context_of(traceparent: str | None) -> Context | None:
    if not traceparent:
        return None
    return _PROPAGATOR.extract({"traceparent": traceparent})


class Tracing:
    """Spans for faena, on a given TracerProvider (the OTLP one, or an in-memory one in tests)."""

    def __init__(self, provider: Any, *, store_sample: float = 0.1) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("faena")
        self.store_sample = store_sample

    def current_traceparent(self) -> str | None:
        span = trace.get_current_span()
        if not span.get_span_context().is_valid:
            return None
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier.get("traceparent")

    @contextmanager
    def attempt(self, job: Job) -> Iterator[NoteOutcome]:
        attributes: dict[str, str | int] = {
            "faena.job.id": job.id,
            "faena.job.kind": job.kind,
            "faena.job.queue": job.queue,
            "faena.job.attempt": job.attempts,
            "faena.tenant": job.tenant,
        }
        with self.tracer.start_as_current_span(
            f"job {job.kind}",
            context=context_of(job.traceparent),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        ) as span:

            def note(succeeded: bool, error: str | None) -> None:
                span.set_attribute("faena.job.outcome", "succeeded" if succeeded else "failed")
                if not succeeded:
                    span.set_status(Status(StatusCode.ERROR, error))

            yield note

    def request_span(self, name: str, headers: Mapping[str, str]) -> Any:
        """A server span for one HTTP request, continuing the caller's ``traceparent``."""
        parent = _PROPAGATOR.extract(headers) if "traceparent" in headers else None
        return self.tracer.start_as_current_span(name, context=parent, kind=SpanKind.SERVER)

    def store_span(self, operation: str) -> Any:
        """A span for a store call, or None: only under a recorded span, and sampled."""
        parent = trace.get_current_span()
        if not parent.is_recording() or random.random() >= self.store_sample:
            return None
        return self.tracer.start_as_current_span(
            f"store.{operation}", kind=SpanKind.CLIENT, attributes={"db.operation": operation}
        )

    def shutdown(self) -> None:
        shutdown = getattr(self.provider, "shutdown", None)
        if shutdown is not None:
            shutdown()


def end_with_error(span: Span, error: BaseException) -> None:
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, type(error).__name__))
