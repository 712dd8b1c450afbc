"""A submit and its execution on a remote agent form one trace: the job's ``traceparent``
travels in the gRPC assignment and the agent starts the attempt's span as its child. Server and
agent each have their own in-memory span exporter, as two processes would."""

from __future__ import annotations

import asyncio

import httpx
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from faena.bootstrap import build_runtime
from faena.config import Settings
from faena.domain.workers import Capacity
from faena.observability.metrics import Metrics
from faena.observability.telemetry import Telemetry
from faena.observability.tracing import Tracing
from faena.worker.agent import Agent, AgentConfig
from faena.worker.executor import Executor
from faena.worker.registry import TaskRegistry

KEY = "fk_remote_tracing_admin_key_0123456789"


def _exporting() -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider, store_sample=0.0), exporter


async def test_a_submit_and_its_remote_attempt_are_one_trace() -> None:
    server_tracing, server_spans = _exporting()
    agent_tracing, agent_spans = _exporting()
    runtime = build_runtime(
        Settings(database_url="memory://", bootstrap_key=KEY, grpc_port=0, ui=False),
        telemetry=Telemetry(Metrics(), server_tracing),
    )
    await runtime.start()
    await runtime.workers_plane.serve_grpc()
    token = (await runtime.workers_plane.tokens.create("default", "test")).plaintext
    agent = Agent(
        AgentConfig(
            server=f"127.0.0.1:{runtime.workers_plane.grpc_port}",
            token=token,
            worker_id="traced-agent",
            capacity=Capacity(slots=2),
        ),
        Executor(TaskRegistry(), allow_shell=True),
        observer=Telemetry(Metrics(), agent_tracing, metrics_on=False),
    )
    task = asyncio.get_running_loop().create_task(agent.run())
    transport = httpx.ASGITransport(runtime.app())
    try:
        async with asyncio.timeout(30):
            while "traced-agent" not in runtime.workers_plane.manager.sessions:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://faena.test",
            headers={"Authorization": f"Bearer {KEY}"},
        ) as client:
            ok = (await client.post("/v1/jobs", json={"kind": "noop"})).json()["id"]
            bad = (
                await client.post(
                    "/v1/jobs", json={"kind": "shell", "payload": {"command": "exit 3"}}
                )
            ).json()["id"]
            for job_id in (ok, bad):
                done = (await client.get(f"/v1/jobs/{job_id}?wait=20")).json()
                assert done["state"] in ("succeeded", "failed"), done
                assert done["worker_id"] == "traced-agent"
    finally:
        agent._stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runtime.stop()

    submits = [s for s in server_spans.get_finished_spans() if s.name == "POST /v1/jobs"]
    attempts = {
        (s.attributes or {}).get("faena.job.id"): s for s in agent_spans.get_finished_spans()
    }
    assert len(submits) == 2 and set(attempts) == {ok, bad}
    for submit, job_id in zip(submits, (ok, bad), strict=True):
        attempt = attempts[job_id]
        assert attempt.kind is SpanKind.CONSUMER
        assert attempt.context.trace_id == submit.context.trace_id
        assert attempt.parent is not None and attempt.parent.span_id == submit.context.span_id
    assert attempts[ok].status.status_code is not StatusCode.ERROR
    assert attempts[bad].status.status_code is StatusCode.ERROR
