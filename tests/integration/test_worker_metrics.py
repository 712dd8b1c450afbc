"""The worker gauges of ``/metrics`` with a real agent connected over the worker protocol:
CPU and memory in Prometheus base units (ratios 0-1, bytes), from the agent's heartbeats."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from faena.bootstrap import Runtime, build_runtime
from faena.config import Settings
from faena.domain.workers import Capacity
from faena.worker.agent import Agent, AgentConfig
from faena.worker.executor import Executor
from faena.worker.load import LoadProbe
from faena.worker.registry import TaskRegistry

ADMIN = "fk_worker_metrics_admin_key_0123456789"
CPU_PERCENT = 37.5  # pinned by the probe: the real figure moves between heartbeats
MEMORY_MB = 2048


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    runtime = build_runtime(
        Settings(database_url="memory://", bootstrap_key=ADMIN, grpc_port=0, lease_s=3.0)
    )
    await runtime.start()
    await runtime.workers_plane.serve_grpc()
    runtime.workers_plane.registry.heartbeat_s = 0.1  # record each heartbeat without waiting
    yield runtime
    await runtime.stop()


async def test_a_connected_workers_cpu_and_memory_are_ratios_and_bytes(runtime: Runtime) -> None:
    plane = runtime.workers_plane
    token = (await plane.tokens.create("default", "metrics")).plaintext
    agent = Agent(
        AgentConfig(
            server=f"127.0.0.1:{plane.grpc_port}",
            token=token,
            worker_id="metrics-1",
            capacity=Capacity(slots=2, memory_mb=MEMORY_MB),
            backoff_min_s=0.05,
            backoff_max_s=0.2,
        ),
        Executor(TaskRegistry(), allow_shell=False),
        probe=LoadProbe(cpu_override=CPU_PERCENT),
    )
    task = asyncio.get_running_loop().create_task(agent.run())
    try:
        async with asyncio.timeout(20):
            while True:
                live = {w.id: w for w in await plane.registry.live()}
                if "metrics-1" in live and live["metrics-1"].load.cpu_percent == CPU_PERCENT:
                    break
                await asyncio.sleep(0.05)
        reported = live["metrics-1"].load.memory_percent
        await plane.registry.refresh()  # the gauges read the registry's cached live workers
        transport = httpx.ASGITransport(runtime.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://faena.test") as c:
            text = (await c.get("/metrics")).text
    finally:
        agent._stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    samples = {
        (s.name, s.labels.get("worker")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("faena_worker_cpu_usage_ratio", "metrics-1")] == pytest.approx(0.375)
    memory = samples[("faena_worker_memory_usage_ratio", "metrics-1")]
    assert 0 < memory <= 1
    assert memory == pytest.approx(reported / 100)
    capacity = samples[("faena_worker_memory_capacity_bytes", "metrics-1")]
    assert capacity == MEMORY_MB * 1024 * 1024
    assert samples[("faena_worker_running_jobs", "metrics-1")] == 0
    assert samples[("faena_workers_connected", None)] >= 1
    assert "faena_worker_cpu_percent" not in text
    assert "faena_worker_memory_percent" not in text
