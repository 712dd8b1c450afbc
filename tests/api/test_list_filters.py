"""``GET /v1/jobs`` filters used by the dashboard: labels and creation time."""

from __future__ import annotations

from tests.api.conftest import Api, assert_error, every_store

store_backend = every_store  # every test here runs on memory, SQLite and PostgreSQL


async def test_label_filters_keep_jobs_with_every_label(api: Api) -> None:
    both = await api.submit(labels={"team": "ops", "env": "prod"})
    await api.submit(labels={"team": "ops"})
    response = await api.client.get(
        "/v1/jobs",
        params=[("label", "team=ops"), ("label", "env=prod")],
        headers=api.auth(api.reader),
    )
    assert [j["id"] for j in response.json()["jobs"]] == [both["id"]]


async def test_time_filters_take_iso_8601_or_epoch_seconds(api: Api) -> None:
    job = await api.submit()
    auth = api.auth(api.reader)
    future = await api.client.get("/v1/jobs?created_after=2999-01-01T00:00:00Z", headers=auth)
    assert future.json()["jobs"] == []
    past = await api.client.get("/v1/jobs?created_after=0&created_before=2999-01-01", headers=auth)
    assert [j["id"] for j in past.json()["jobs"]] == [job["id"]]


async def test_a_bad_filter_is_a_422_naming_it(api: Api) -> None:
    auth = api.auth(api.reader)
    label = await api.client.get("/v1/jobs?label=novalue", headers=auth)
    assert "query.label" in assert_error(label, 422, "invalid")
    when = await api.client.get("/v1/jobs?created_after=yesterday", headers=auth)
    assert "query.created_after" in assert_error(when, 422, "invalid")
