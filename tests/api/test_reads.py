"""GET /v1/jobs (filters, cursor pages), GET /v1/jobs/{id} (with ?wait=), stats and kinds."""

from __future__ import annotations

import asyncio

import pytest

from faena.domain.jobs import JobState
from tests.api.conftest import KINDS, Api, assert_error, every_store

store_backend = every_store  # every test here runs on memory, SQLite and PostgreSQL


async def test_a_job_is_read_by_id(api: Api) -> None:
    job = await api.submit(payload={"n": 1})
    response = await api.client.get(f"/v1/jobs/{job['id']}", headers=api.auth(api.reader))
    assert response.status_code == 200
    assert response.json() == job


async def test_an_unknown_id_is_a_404(api: Api) -> None:
    response = await api.client.get("/v1/jobs/no-such-job", headers=api.auth(api.reader))
    assert "'no-such-job'" in assert_error(response, 404, "not_found")


async def test_wait_returns_the_job_once_it_is_terminal(api: Api) -> None:
    job = await api.submit()
    waiting = asyncio.create_task(
        api.client.get(f"/v1/jobs/{job['id']}?wait=10", headers=api.auth(api.reader))
    )
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await api.run(job["id"], result={"ok": True})
    response = await waiting
    assert (response.json()["state"], response.json()["result"]) == ("succeeded", {"ok": True})


async def test_wait_answers_with_the_current_state_when_time_is_up(api: Api) -> None:
    job = await api.submit()
    response = await api.client.get(f"/v1/jobs/{job['id']}?wait=0.05", headers=api.auth(api.reader))
    assert response.json()["state"] == "queued"


@pytest.mark.parametrize("wait", ["-1", "61", "nan", "inf", "soon"])
async def test_an_out_of_range_wait_is_refused(api: Api, wait: str) -> None:
    job = await api.submit()
    response = await api.client.get(
        f"/v1/jobs/{job['id']}", params={"wait": wait}, headers=api.auth(api.reader)
    )
    assert "query.wait" in assert_error(response, 422, "invalid")


async def test_jobs_are_listed_newest_first(api: Api) -> None:
    ids = [(await api.submit())["id"] for _ in range(3)]
    response = await api.client.get("/v1/jobs", headers=api.auth(api.reader))
    body = response.json()
    assert [j["id"] for j in body["jobs"]] == ids[::-1]
    assert body["next_cursor"] is None


async def test_pages_follow_the_cursor_without_gaps_or_repeats(api: Api) -> None:
    ids = [(await api.submit())["id"] for _ in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        body = (
            await api.client.get("/v1/jobs", params=params, headers=api.auth(api.reader))
        ).json()
        seen += [j["id"] for j in body["jobs"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]


async def test_jobs_are_filtered_by_state(api: Api) -> None:
    done = await api.submit()
    await api.run(done["id"])
    queued = await api.submit()
    response = await api.client.get("/v1/jobs?state=queued", headers=api.auth(api.reader))
    assert [j["id"] for j in response.json()["jobs"]] == [queued["id"]]


async def test_several_states_are_comma_separated(api: Api) -> None:
    done = await api.submit()
    await api.run(done["id"])
    queued = await api.submit()
    await api.submit(delay_s=100)
    response = await api.client.get("/v1/jobs?state=queued,succeeded", headers=api.auth(api.reader))
    assert {j["id"] for j in response.json()["jobs"]} == {queued["id"], done["id"]}


async def test_jobs_are_filtered_by_queue_and_kind(api: Api) -> None:
    await api.submit("noop", queue="a")
    await api.submit("echo", queue="a")
    wanted = await api.submit("echo", queue="b")
    response = await api.client.get("/v1/jobs?queue=b&kind=echo", headers=api.auth(api.reader))
    assert [j["id"] for j in response.json()["jobs"]] == [wanted["id"]]


async def test_an_unknown_state_is_refused_with_the_known_ones(api: Api) -> None:
    response = await api.client.get("/v1/jobs?state=done", headers=api.auth(api.reader))
    message = assert_error(response, 422, "invalid")
    assert "'done'" in message and "succeeded" in message


@pytest.mark.parametrize("limit", ["0", "501", "-3", "many"])
async def test_an_out_of_range_limit_is_refused(api: Api, limit: str) -> None:
    response = await api.client.get(
        "/v1/jobs", params={"limit": limit}, headers=api.auth(api.reader)
    )
    assert "query.limit" in assert_error(response, 422, "invalid")


async def test_stats_count_jobs_by_state_and_queue(api: Api) -> None:
    await api.submit(queue="a")
    done = await api.submit(queue="b")
    await api.run(done["id"])
    response = await api.client.get("/v1/stats", headers=api.auth(api.reader))
    body = response.json()
    assert body["by_state"][JobState.QUEUED.value] == 1
    assert body["by_state"][JobState.SUCCEEDED.value] == 1
    assert body["by_queue"]["a"]["queued"] == 1


async def test_kinds_lists_what_is_served(api: Api) -> None:
    response = await api.client.get("/v1/kinds", headers=api.auth(api.reader))
    assert response.json() == {"kinds": sorted(KINDS)}
