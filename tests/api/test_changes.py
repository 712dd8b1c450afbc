"""POST /v1/jobs/{id}/cancel and /retry."""

from __future__ import annotations

from faena.domain.jobs import JobState
from tests.api.conftest import Api, assert_error


async def test_a_queued_job_is_cancelled(api: Api) -> None:
    job = await api.submit()
    response = await api.client.post(f"/v1/jobs/{job['id']}/cancel", headers=api.auth(api.writer))
    assert response.status_code == 200
    assert response.json()["state"] == "cancelled"


async def test_cancelling_a_finished_job_is_a_409(api: Api) -> None:
    job = await api.submit()
    await api.run(job["id"])
    response = await api.client.post(f"/v1/jobs/{job['id']}/cancel", headers=api.auth(api.writer))
    assert "succeeded" in assert_error(response, 409, "conflict")


async def test_cancelling_an_unknown_job_is_a_404(api: Api) -> None:
    response = await api.client.post("/v1/jobs/nope/cancel", headers=api.auth(api.writer))
    assert_error(response, 404, "not_found")


async def test_cancelling_needs_the_write_scope(api: Api) -> None:
    job = await api.submit()
    response = await api.client.post(f"/v1/jobs/{job['id']}/cancel", headers=api.auth(api.reader))
    assert_error(response, 403, "forbidden")


async def test_a_failed_job_is_retried(api: Api) -> None:
    job = await api.submit()
    started = await api.start(job["id"])
    await api.finish(started, JobState.FAILED, error="boom")
    response = await api.client.post(f"/v1/jobs/{job['id']}/retry", headers=api.auth(api.writer))
    assert response.status_code == 200
    assert (response.json()["state"], response.json()["attempts"]) == ("queued", 0)


async def test_retrying_a_queued_job_is_a_409(api: Api) -> None:
    job = await api.submit()
    response = await api.client.post(f"/v1/jobs/{job['id']}/retry", headers=api.auth(api.writer))
    assert_error(response, 409, "conflict")


async def test_retrying_an_unknown_job_is_a_404(api: Api) -> None:
    response = await api.client.post("/v1/jobs/nope/retry", headers=api.auth(api.writer))
    assert_error(response, 404, "not_found")
