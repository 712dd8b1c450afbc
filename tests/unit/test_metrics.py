"""The metric families and what Metrics records from batches of jobs (no server)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from faena.domain.jobs import Job, JobSpec, JobState
from faena.observability.families import CounterFamily, HistogramFamily
from faena.observability.metrics import Metrics
from faena.ports.telemetry import QueueDepth

NOW = 1_000_000.0


def job(kind: str = "noop", queue: str = "default", **changes: object) -> Job:
    return Job.from_spec(f"j-{kind}-{queue}", JobSpec(kind=kind, queue=queue), NOW - 10).evolve(
        **changes
    )


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics_text(metrics)
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def metrics_text(metrics: Metrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()


def test_a_counter_adds_per_label_tuple() -> None:
    family = CounterFamily("x", "doc", ("a",))
    family.inc(("1",))
    family.inc(("1",), 2)
    family.inc(("2",))
    assert family.value("1") == 3
    assert family.value("2") == 1
    assert family.value("3") == 0


def test_a_histogram_puts_values_in_cumulative_buckets() -> None:
    family = HistogramFamily("h", "doc", (), buckets=(1.0, 2.0))
    family.observe_many((), [0.5, 1.0, 1.5, 3.0])
    [sample_family] = [family.collect()]
    by_le = {s.labels.get("le"): s.value for s in sample_family.samples if s.name == "h_bucket"}
    assert by_le == {"1.0": 2, "2.0": 3, "+Inf": 4}
    assert family.count() == 4


def test_submitted_started_and_finished_are_counted_by_kind_queue_and_outcome() -> None:
    m = Metrics()
    m.record_submitted([job(), job(), job("shell", "q2")])
    m.record_started([job(state=JobState.RUNNING)], NOW)
    done = job(state=JobState.SUCCEEDED, started_at=NOW - 2)
    failed = job("shell", "q2", state=JobState.FAILED, started_at=NOW - 1, error="exit 1")
    m.record_completed([done, failed], NOW)
    found = samples(m)
    assert found[("faena_jobs_submitted_total", (("kind", "noop"), ("queue", "default")))] == 2
    assert found[("faena_jobs_submitted_total", (("kind", "shell"), ("queue", "q2")))] == 1
    assert found[("faena_jobs_started_total", (("kind", "noop"), ("queue", "default")))] == 1
    key = (("kind", "shell"), ("outcome", "failed"), ("queue", "q2"))
    assert found[("faena_jobs_finished_total", key)] == 1
    wait = found[("faena_job_wait_seconds_sum", (("kind", "noop"), ("queue", "default")))]
    assert wait == 10  # created 10 s before it started
    run = found[("faena_job_run_seconds_sum", (("kind", "noop"), ("queue", "default")))]
    assert run == 2


def test_retries_timeouts_and_lease_expiries_have_their_counters() -> None:
    m = Metrics()
    retry = job(state=JobState.SCHEDULED, started_at=NOW - 5, error="timed out after 5s")
    m.record_completed([retry], NOW)
    m.record_expired([job(state=JobState.QUEUED), job(state=JobState.FAILED)])
    labels = ("noop", "default")
    assert m.retries.value(*labels) == 1
    assert m.timeouts.value(*labels) == 1
    assert m.lease_expiries.value("default") == 2
    assert m.finished.value("noop", "default", "failed") == 1  # the one without attempts left


async def test_queue_depths_are_read_once_per_ttl() -> None:
    calls = 0

    class Source:
        async def queue_depths(self) -> list[QueueDepth]:
            nonlocal calls
            calls += 1
            return [QueueDepth("default", "queued", 3, NOW - 7)]

    m = Metrics(depth_ttl_s=60, clock=lambda: NOW)
    m.set_depth_source(Source())
    first = (await m.render()).decode()
    await m.render()
    assert calls == 1
    assert 'faena_queue_depth{queue="default",state="queued"} 3.0' in first
    assert 'faena_queue_depth{queue="default",state="running"} 0.0' in first
    assert 'faena_queue_oldest_age_seconds{queue="default"} 7.0' in first


def test_gauges_are_read_at_scrape_time() -> None:
    m = Metrics()
    value = {"n": 1.0}
    m.add_gauge("faena_things", "doc", ("k",), lambda: {("a",): value["n"]})
    value["n"] = 5.0
    assert samples(m)[("faena_things", (("k", "a"),))] == 5.0


def test_every_name_follows_the_conventions() -> None:
    m = Metrics()
    m.record_submitted([job()])
    m.record_http("GET", "/v1/jobs", 200, 0.01)
    m.record_store("claim", 0.001)
    for family in text_string_to_metric_families(metrics_text(m)):
        if family.name.startswith("process_"):
            continue
        assert family.name.startswith("faena_")
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
        if family.type == "histogram":
            assert family.name.endswith("_seconds")
