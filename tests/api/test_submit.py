"""POST /v1/jobs: what is accepted, what it returns, and every way a body is refused."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

import pytest

from tests.api.conftest import Api, assert_error, every_store

store_backend = every_store  # every test here runs on memory, SQLite and PostgreSQL


async def test_a_submitted_job_is_created_queued(api: Api) -> None:
    response = await api.client.post(
        "/v1/jobs", json={"kind": "noop", "payload": {"a": 1}}, headers=api.auth(api.writer)
    )
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["state"] == "queued"
    assert (job["kind"], job["payload"], job["tenant"], job["queue"]) == (
        "noop",
        {"a": 1},
        "default",
        "default",
    )
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"


async def test_a_job_has_every_field_of_the_contract(api: Api) -> None:
    job = await api.submit()
    assert set(job) == {
        "id", "tenant", "kind", "queue", "state", "payload", "result", "error", "attempts",
        "max_attempts", "priority", "labels", "worker_id", "created_at", "started_at",
        "finished_at", "run_at", "timeout_s", "idempotency_key", "concurrency_key",
    }  # fmt: skip


async def test_times_are_iso_8601_utc(api: Api) -> None:
    job = await api.submit()
    created = datetime.fromisoformat(job["created_at"])
    assert job["created_at"].endswith("Z")
    assert abs((datetime.now(UTC) - created).total_seconds()) < 60


async def test_options_are_stored(api: Api) -> None:
    job = await api.submit(
        "shell",
        key=api.admin,  # shell needs the jobs:shell scope (or admin)
        payload={"command": "echo hi"},
        queue="emails",
        priority=5,
        labels={"gpu": "yes"},
        max_attempts=3,
        timeout_s=2.5,
        concurrency_key="acct-1",
    )
    assert (job["queue"], job["priority"], job["labels"]) == ("emails", 5, {"gpu": "yes"})
    assert (job["max_attempts"], job["timeout_s"], job["concurrency_key"]) == (3, 2.5, "acct-1")


async def test_retries_means_one_more_attempt(api: Api) -> None:
    job = await api.submit(retries=2)
    assert job["max_attempts"] == 3


async def test_a_delayed_job_is_scheduled(api: Api) -> None:
    job = await api.submit(delay_s=60)
    assert job["state"] == "scheduled"
    assert job["run_at"] is not None


async def test_run_at_accepts_iso_8601(api: Api) -> None:
    year = datetime.now(UTC).year + 1
    job = await api.submit(run_at=f"{year}-01-01T09:30:00Z")
    assert job["state"] == "scheduled"
    assert job["run_at"] == f"{year}-01-01T09:30:00.000000Z"


async def test_run_at_accepts_epoch_seconds(api: Api) -> None:
    soon = time.time() + 3600
    job = await api.submit(run_at=soon)
    assert datetime.fromisoformat(job["run_at"]).timestamp() == pytest.approx(soon)


async def test_a_second_submit_with_the_same_idempotency_key_returns_the_first_job(
    api: Api,
) -> None:
    first = await api.submit(idempotency_key="order-7")
    again = await api.client.post(
        "/v1/jobs",
        json={"kind": "noop", "idempotency_key": "order-7"},
        headers=api.auth(api.writer),
    )
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]


async def test_an_unknown_kind_is_refused_with_the_kinds_served(api: Api) -> None:
    response = await api.client.post(
        "/v1/jobs", json={"kind": "nope"}, headers=api.auth(api.writer)
    )
    message = assert_error(response, 422, "invalid")
    assert "'nope'" in message and "shell" in message


async def test_unknown_fields_are_named(api: Api) -> None:
    response = await api.client.post(
        "/v1/jobs", json={"kind": "noop", "priorty": 3}, headers=api.auth(api.writer)
    )
    assert assert_error(response, 422, "invalid") == "body.priorty: unknown field"


async def test_a_missing_kind_is_named(api: Api) -> None:
    response = await api.client.post("/v1/jobs", json={}, headers=api.auth(api.writer))
    assert "body.kind: Field required" in assert_error(response, 422, "invalid")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("priority", "high"),
        ("priority", "5"),
        ("priority", 1.5),
        ("priority", True),
        ("max_attempts", [3]),
        ("labels", {"gpu": 1}),
        ("labels", ["gpu"]),
        ("queue", 7),
        ("timeout_s", "10"),
        ("run_at", "next tuesday"),
    ],
)
async def test_wrong_types_are_refused_naming_the_field(
    api: Api, field: str, value: object
) -> None:
    response = await api.client.post(
        "/v1/jobs", json={"kind": "noop", field: value}, headers=api.auth(api.writer)
    )
    assert f"body.{field}" in assert_error(response, 422, "invalid")


async def test_the_message_for_a_wrong_type_says_what_to_send(api: Api) -> None:
    response = await api.client.post(
        "/v1/jobs", json={"kind": "noop", "priority": "high"}, headers=api.auth(api.writer)
    )
    assert (
        assert_error(response, 422, "invalid") == "body.priority: Input should be a valid integer"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("priority", 10**12),
        ("priority", -(10**12)),
        ("priority", 10**40),
        ("max_attempts", 0),
        ("max_attempts", -1),
        ("max_attempts", 10**6),
        ("retries", -1),
        ("timeout_s", 0),
        ("timeout_s", -5),
        ("timeout_s", 1e300),
        ("delay_s", -1),
        ("delay_s", 1e12),
        ("run_at", -1),
        ("concurrency_limit", 0),
        ("backoff_s", -0.5),
    ],
)
async def test_negative_and_absurd_numbers_are_refused(api: Api, field: str, value: float) -> None:
    response = await api.client.post(
        "/v1/jobs", json={"kind": "noop", field: value}, headers=api.auth(api.writer)
    )
    assert f"body.{field}" in assert_error(response, 422, "invalid")


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
async def test_non_finite_numbers_are_refused(api: Api, literal: bytes) -> None:
    body = b'{"kind": "noop", "timeout_s": %s}' % literal
    response = await api.client.post(
        "/v1/jobs",
        content=body,
        headers={**api.auth(api.writer), "Content-Type": "application/json"},
    )
    assert "finite" in assert_error(response, 422, "invalid")


async def test_non_finite_numbers_in_the_payload_are_refused(api: Api) -> None:
    response = await api.client.post(
        "/v1/jobs",
        content=b'{"kind": "noop", "payload": {"x": NaN}}',
        headers={**api.auth(api.writer), "Content-Type": "application/json"},
    )
    assert_error(response, 422, "invalid")


@pytest.mark.parametrize("field", ["kind", "queue", "idempotency_key", "concurrency_key"])
async def test_huge_strings_are_refused(api: Api, field: str) -> None:
    response = await api.client.post(
        "/v1/jobs", json={"kind": "noop", field: "x" * 10_000}, headers=api.auth(api.writer)
    )
    assert f"body.{field}" in assert_error(response, 422, "invalid")


async def test_too_many_labels_are_refused(api: Api) -> None:
    labels = {f"k{i}": "v" for i in range(101)}
    response = await api.client.post(
        "/v1/jobs", json={"kind": "noop", "labels": labels}, headers=api.auth(api.writer)
    )
    assert "body.labels" in assert_error(response, 422, "invalid")


async def test_retries_and_max_attempts_together_are_refused(api: Api) -> None:
    response = await api.client.post(
        "/v1/jobs",
        json={"kind": "noop", "retries": 1, "max_attempts": 2},
        headers=api.auth(api.writer),
    )
    assert "retries or max_attempts" in assert_error(response, 422, "invalid")


async def test_delay_and_run_at_together_are_refused(api: Api) -> None:
    response = await api.client.post(
        "/v1/jobs",
        json={"kind": "noop", "delay_s": 1, "run_at": time.time() + 60},
        headers=api.auth(api.writer),
    )
    assert "delay_s or run_at" in assert_error(response, 422, "invalid")


async def test_a_body_that_is_not_an_object_is_refused(api: Api) -> None:
    response = await api.client.post("/v1/jobs", json=[1, 2], headers=api.auth(api.writer))
    assert_error(response, 422, "invalid")


async def test_a_refused_job_is_not_stored(api: Api) -> None:
    await api.client.post("/v1/jobs", json={"kind": "nope"}, headers=api.auth(api.writer))
    assert (await api.orchestrator.stats("default")).by_state.get("queued", 0) == 0
    assert not math.isnan(0.0)
