"""POST /v1/jobs/batch: many jobs in one request, all or nothing."""

from __future__ import annotations

from tests.api.conftest import Api, assert_error, every_store

store_backend = every_store  # every test here runs on memory, SQLite and PostgreSQL


async def test_a_batch_is_created_in_order(api: Api) -> None:
    body = [{"kind": "noop", "payload": i} for i in range(5)]
    response = await api.client.post("/v1/jobs/batch", json=body, headers=api.auth(api.writer))
    assert response.status_code == 201
    assert [job["payload"] for job in response.json()] == [0, 1, 2, 3, 4]


async def test_a_batch_may_come_wrapped_in_an_object(api: Api) -> None:
    body = {"jobs": [{"kind": "noop"}, {"kind": "echo"}]}
    response = await api.client.post("/v1/jobs/batch", json=body, headers=api.auth(api.writer))
    assert response.status_code == 201
    assert [job["kind"] for job in response.json()] == ["noop", "echo"]


async def test_an_invalid_job_names_its_index(api: Api) -> None:
    body = [{"kind": "noop"}, {"kind": "noop", "priority": "x"}]
    response = await api.client.post("/v1/jobs/batch", json=body, headers=api.auth(api.writer))
    assert (
        assert_error(response, 422, "invalid") == "body.1.priority: Input should be a valid integer"
    )


async def test_an_unknown_kind_names_its_index(api: Api) -> None:
    body = [{"kind": "noop"}, {"kind": "nope"}]
    response = await api.client.post("/v1/jobs/batch", json=body, headers=api.auth(api.writer))
    assert assert_error(response, 422, "invalid").startswith("job 1: unknown kind 'nope'")


async def test_a_refused_batch_stores_nothing(api: Api) -> None:
    body = [{"kind": "noop"}, {"kind": "nope"}]
    await api.client.post("/v1/jobs/batch", json=body, headers=api.auth(api.writer))
    assert (await api.orchestrator.stats("default")).by_state.get("queued", 0) == 0


async def test_an_empty_batch_is_refused(api: Api) -> None:
    response = await api.client.post("/v1/jobs/batch", json=[], headers=api.auth(api.writer))
    assert_error(response, 422, "invalid")


async def test_a_batch_that_is_not_a_list_is_refused(api: Api) -> None:
    response = await api.client.post("/v1/jobs/batch", json="noop", headers=api.auth(api.writer))
    assert_error(response, 422, "invalid")


async def test_a_batch_needs_the_write_scope(api: Api) -> None:
    response = await api.client.post(
        "/v1/jobs/batch", json=[{"kind": "noop"}], headers=api.auth(api.reader)
    )
    assert "jobs:write" in assert_error(response, 403, "forbidden")
