"""``GET /metrics`` on a real runtime: the counters move with real work."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from faena.domain.jobs import DEFAULT_TENANT, JobState
from faena.ports.store import ClaimParams
from faena.ports.workflows import DispatchOutboxParams
from faena.testing import InMemoryFaena

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def faena() -> AsyncIterator[InMemoryFaena]:
    async with InMemoryFaena(workers=4) as f:
        yield f


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    found: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_jobs_that_ran_are_counted_by_kind_queue_and_outcome(faena: InMemoryFaena) -> None:
    transport = httpx.ASGITransport(faena.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://faena.test") as client:
        auth = {"Authorization": f"Bearer {faena.api_key}"}
        for _ in range(3):
            r = await client.post("/v1/jobs", json={"kind": "noop"}, headers=auth)
            assert r.status_code == 201
        failing = {"kind": "shell", "queue": "ops", "payload": {"command": "exit 3"}}
        assert (await client.post("/v1/jobs", json=failing, headers=auth)).status_code == 201
        slow = {
            "kind": "sleep",
            "payload": {"seconds": 5},
            "timeout_s": 0.05,
            "retries": 1,
            "backoff_s": 0,
        }
        assert (await client.post("/v1/jobs", json=slow, headers=auth)).status_code == 201
        await faena.run_until_idle()
        await client.get("/v1/jobs/nope", headers=auth)
        samples = await scrape(client)

    submitted = "faena_jobs_submitted_total"
    assert value(samples, submitted, kind="noop", queue="default") == 3
    assert value(samples, submitted, kind="shell", queue="ops") == 1
    assert value(samples, "faena_jobs_started_total", kind="noop", queue="default") == 3
    finished = "faena_jobs_finished_total"
    assert value(samples, finished, kind="noop", queue="default", outcome="succeeded") == 3
    assert value(samples, finished, kind="shell", queue="ops", outcome="failed") == 1
    assert value(samples, finished, kind="sleep", queue="default", outcome="failed") == 1
    assert value(samples, "faena_job_retries_total", kind="sleep", queue="default") == 1
    assert value(samples, "faena_job_timeouts_total", kind="sleep", queue="default") == 2
    waits = "faena_job_wait_seconds_count"
    assert value(samples, waits, kind="noop", queue="default") == 3
    assert value(samples, "faena_job_run_seconds_count", kind="shell", queue="ops") == 1
    http = "faena_http_requests_total"
    assert value(samples, http, method="POST", route="/v1/jobs", status="201") == 5
    assert value(samples, http, method="GET", route="/v1/jobs/{job_id}", status="404") == 1
    latency = "faena_http_request_duration_seconds_count"
    assert value(samples, latency, method="POST", route="/v1/jobs") == 5
    store = "faena_store_operation_duration_seconds_count"
    assert value(samples, store, operation="submit_many") == 5
    assert value(samples, store, operation="claim") >= 1
    assert value(samples, "faena_backlog", pipeline="completions") == 0
    assert value(samples, "faena_pool_slots", use="total") == 4
    assert value(samples, "process_resident_memory_bytes") > 0


async def test_queue_depth_and_oldest_age_come_from_the_store(faena: InMemoryFaena) -> None:
    await faena.runtime.pool.stop(0)  # type: ignore[union-attr]  # nothing runs: jobs wait
    await faena.submit("noop", queue="reports")
    await faena.submit("noop", queue="reports")
    await faena.submit("noop", delay_s=600)
    transport = httpx.ASGITransport(faena.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://faena.test") as client:
        samples = await scrape(client)
    assert value(samples, "faena_queue_depth", queue="reports", state="queued") == 2
    assert value(samples, "faena_queue_depth", queue="default", state="scheduled") == 1
    assert value(samples, "faena_queue_depth", queue="reports", state="running") == 0
    assert value(samples, "faena_queue_oldest_age_seconds", queue="reports") >= 0
    assert ("faena_queue_oldest_age_seconds", frozenset({("queue", "reports")})) in samples


async def test_lease_expiries_are_counted() -> None:
    async with InMemoryFaena(workers=1) as faena:
        await faena.runtime.pool.stop(0)  # type: ignore[union-attr]  # a worker that died
        job = await faena.submit("noop")
        store = faena.runtime.store
        now = faena.runtime.orchestrator.clock.now()
        params = ClaimParams(worker_id="gone", limit=1, lease_s=1, now=now - 10)
        [claimed] = await store.claim(params)
        assert claimed.id == job.id
        assert await faena.runtime.reaper.reap_once() == 1
        assert (await faena.get(job.id)).state is JobState.FAILED
        transport = httpx.ASGITransport(faena.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://faena.test") as c:
            samples = await scrape(c)
    assert value(samples, "faena_lease_expiries_total", queue="default") == 1
    outcome = {"kind": "noop", "queue": "default", "outcome": "failed"}
    assert value(samples, "faena_jobs_finished_total", **outcome) == 1
    assert faena.tenant == DEFAULT_TENANT


async def test_cancelled_jobs_are_counted_as_finished(faena: InMemoryFaena) -> None:
    job = await faena.submit("sleep", {"seconds": 30})
    await faena.runtime.orchestrator.cancel(faena.tenant, job.id)
    metrics = faena.runtime.telemetry.metrics  # type: ignore[union-attr]
    assert metrics.finished.value("sleep", "default", "cancelled") == 1


async def test_metrics_can_be_turned_off() -> None:
    from faena.bootstrap import build_runtime
    from faena.config import Settings

    runtime = build_runtime(Settings(database_url="memory://", metrics=False))
    await runtime.start()
    try:
        transport = httpx.ASGITransport(runtime.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://faena.test") as c:
            assert (await c.get("/metrics")).status_code == 404
    finally:
        await runtime.stop()


async def test_the_webhook_backlog_is_a_gauge(faena: InMemoryFaena) -> None:
    """Outbox events not yet relayed and deliveries not yet made, read from the store."""
    webhooks = faena.runtime.automation.webhooks  # type: ignore[union-attr]
    assert webhooks is not None
    await webhooks.stop()  # nothing relays: what is written stays in the backlog
    await webhooks.subscribe(DEFAULT_TENANT, "http://127.0.0.1:9/never", ["workflow.applied"])
    workflows = faena.runtime.workflows
    assert workflows is not None
    for name in ("a", "b"):
        await workflows.apply_text(DEFAULT_TENANT, f"name: {name}\nsteps: [{{id: s, kind: noop}}]")
    transport = httpx.ASGITransport(faena.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://faena.test") as client:
        before = await scrape(client)
        assert value(before, "faena_outbox_backlog") == 2
        assert value(before, "faena_webhook_deliveries_pending") == 0
        await webhooks.store.dispatch_outbox(DispatchOutboxParams(now=0.0, limit=100))
        faena.runtime.telemetry.metrics.depth_ttl_s = 0.0
        after = await scrape(client)
    assert value(after, "faena_outbox_backlog") == 0
    assert value(after, "faena_webhook_deliveries_pending") == 2


async def test_requests_refused_by_rate_limits_are_a_counter() -> None:
    """``faena_rate_limited_requests_total`` (a counter, by bucket), not a gauge that grows."""
    from faena.bootstrap import build_runtime
    from faena.config import Settings

    admin = "fk_metrics_rate_limit_admin_0123456789"
    runtime = build_runtime(
        Settings(database_url="memory://", bootstrap_key=admin, rate_limit=2, workers=0)
    )
    await runtime.start()
    try:
        transport = httpx.ASGITransport(runtime.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://faena.test") as c:
            auth = {"Authorization": f"Bearer {admin}"}
            statuses = [(await c.get("/v1/stats", headers=auth)).status_code for _ in range(4)]
            response = await c.get("/metrics")
    finally:
        await runtime.stop()
    assert statuses == [200, 200, 429, 429]
    types = {f.name: f.type for f in text_string_to_metric_families(response.text)}
    assert types["faena_rate_limited_requests"] == "counter"
    assert types["faena_rate_limit_backend_errors"] == "counter"
    assert "_total_total" not in response.text
    assert 'faena_rate_limited_requests_total{bucket="key"} 2.0' in response.text
    assert "faena_rate_limit_backend_errors_total 0.0" in response.text
