"""Tracing with the OpenTelemetry SDK's in-memory exporter: a submit and its execution form
one trace; requests and store calls have spans."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from faena.bootstrap import Runtime, build_runtime
from faena.config import Settings
from faena.observability.metrics import Metrics
from faena.observability.telemetry import Telemetry
from faena.observability.tracing import Tracing, tracing_wanted
from faena.services.orchestrator import JobRequest

KEY = "fk_test_admin_key_for_tracing_tests_only"


@dataclass
class Traced:
    runtime: Runtime
    client: httpx.AsyncClient
    spans: InMemorySpanExporter

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())


@pytest.fixture
async def traced() -> AsyncIterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = Telemetry(Metrics(), Tracing(provider, store_sample=1.0))
    settings = Settings(database_url="memory://", workers=2, bootstrap_key=KEY)
    runtime = build_runtime(settings, telemetry=telemetry)
    await runtime.start()
    transport = httpx.ASGITransport(runtime.app())
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://faena.test", headers=headers
    ) as client:
        yield Traced(runtime, client, exporter)
    await runtime.stop()


async def test_a_submit_and_its_execution_are_one_trace(traced: Traced) -> None:
    response = await traced.client.post("/v1/jobs", json={"kind": "noop"})
    job_id = response.json()["id"]
    done = await traced.client.get(f"/v1/jobs/{job_id}?wait=5")
    assert done.json()["state"] == "succeeded"

    spans = traced.finished()
    [submit] = [s for s in spans if s.name == "POST /v1/jobs"]
    [attempt] = [s for s in spans if s.name == "job noop"]
    assert submit.kind is SpanKind.SERVER
    assert attempt.kind is SpanKind.CONSUMER
    assert attempt.context.trace_id == submit.context.trace_id
    assert attempt.parent is not None and attempt.parent.span_id == submit.context.span_id
    assert attempt.attributes is not None
    assert attempt.attributes["faena.job.id"] == job_id
    assert attempt.attributes["faena.job.outcome"] == "succeeded"
    assert submit.attributes is not None
    assert submit.attributes["http.route"] == "/v1/jobs"
    assert submit.attributes["http.response.status_code"] == 201


async def test_store_calls_under_a_request_have_child_spans(traced: Traced) -> None:
    await traced.client.post("/v1/jobs", json={"kind": "noop"})
    spans = traced.finished()
    [submit] = [s for s in spans if s.name == "POST /v1/jobs"]
    stored = [s for s in spans if s.name == "store.submit_many"]
    assert stored, [s.name for s in spans]
    assert stored[0].parent is not None
    assert stored[0].context.trace_id == submit.context.trace_id


async def test_an_incoming_traceparent_is_continued(traced: Traced) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = f"00-{trace_id}-00f067aa0ba902b7-01"
    await traced.client.get("/v1/stats", headers={"traceparent": parent})
    [span] = [s for s in traced.finished() if s.name == "GET /v1/stats"]
    assert f"{span.context.trace_id:032x}" == trace_id


async def test_a_failed_attempt_marks_its_span_as_an_error(traced: Traced) -> None:
    body = {"kind": "shell", "payload": {"command": "exit 2"}}
    job_id = (await traced.client.post("/v1/jobs", json=body)).json()["id"]
    await traced.client.get(f"/v1/jobs/{job_id}?wait=5")
    [attempt] = [s for s in traced.finished() if s.name == "job shell"]
    assert attempt.status.status_code is StatusCode.ERROR


async def test_without_a_span_no_traceparent_is_stored(traced: Traced) -> None:
    [submitted] = await traced.runtime.orchestrator.submit("default", [JobRequest("noop")])
    assert submitted.job.traceparent is None


@pytest.mark.parametrize(
    ("setting", "env", "wanted"),
    [
        ("auto", {}, False),
        ("auto", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ("auto", {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ("on", {}, True),
        ("off", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
        ("on", {"OTEL_SDK_DISABLED": "true"}, False),
        ("auto", {"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_tracing_is_off_unless_configured(setting: str, env: dict[str, str], wanted: bool) -> None:
    assert tracing_wanted(setting, env) is wanted
