"""The audit log: every mutating call and every refused credential is recorded once, in the
caller's tenant, before the answer leaves; /v1/audit lists it with filters (audit:read)."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api, assert_error, every_store

store_backend = every_store  # every test here runs on memory, SQLite and PostgreSQL


async def entries(api: Api, key: str | None = None, **params: Any) -> list[dict[str, Any]]:
    response = await api.client.get("/v1/audit", params=params, headers=api.auth(key or api.admin))
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["entries"]
    return found


async def test_a_submit_is_recorded_with_who_what_and_how(api: Api) -> None:
    job = await api.submit()
    [entry] = await entries(api, action="jobs.submit")
    assert entry["tenant"] == "default"
    assert entry["target"] == job["id"]
    assert entry["outcome"] == "ok" and entry["status"] == 201
    assert entry["key_prefix"] == api.writer[:11]
    assert entry["client_ip"] == "127.0.0.1"
    assert entry["request_id"]


async def test_a_refused_mutation_is_recorded_with_its_reason(api: Api) -> None:
    response = await api.client.post("/v1/jobs/nope/cancel", headers=api.auth(api.writer))
    assert_error(response, 404, "not_found")
    [entry] = await entries(api, action="jobs.cancel")
    assert (entry["outcome"], entry["status"], entry["target"]) == ("error", 404, "nope")
    assert "nope" in entry["detail"]


async def test_an_unknown_key_is_recorded_as_an_authentication_failure(api: Api) -> None:
    bad = "fk_notakey0000000000000000"
    response = await api.client.get("/v1/jobs", headers=api.auth(bad))
    assert_error(response, 401, "unauthorized")
    [entry] = await entries(api, action="auth.failed")
    assert (entry["outcome"], entry["status"], entry["tenant"]) == ("denied", 401, "default")
    assert entry["key_prefix"] == bad[:11]
    assert entry["target"] == "/v1/jobs"


async def test_a_missing_scope_is_recorded_in_the_callers_tenant(api: Api) -> None:
    response = await api.client.post("/v1/jobs", json={"kind": "noop"}, headers=api.auth(api.other))
    assert response.status_code == 201
    refused = await api.client.get("/v1/keys", headers=api.auth(api.other))
    assert_error(refused, 403, "forbidden")
    made = await api.client.post(
        "/v1/keys",
        json={"name": "b-audit", "tenant": "b", "scopes": ["audit:read"]},
        headers=api.auth(api.admin),
    )
    b_auditor = made.json()["key"]
    found = await entries(api, key=b_auditor)
    assert [(e["action"], e["outcome"]) for e in found] == [
        ("auth.forbidden", "denied"),
        ("jobs.submit", "ok"),
    ]
    assert not await entries(api, action="jobs.submit")  # tenant b's calls stay in b


async def test_reading_the_audit_log_needs_its_scope(api: Api) -> None:
    response = await api.client.get("/v1/audit", headers=api.auth(api.writer))
    assert "'audit:read'" in assert_error(response, 403, "forbidden")


async def test_the_audit_log_pages_newest_first(api: Api) -> None:
    jobs = [await api.submit() for _ in range(3)]
    first = await api.client.get(
        "/v1/audit", params={"action": "jobs.submit", "limit": 2}, headers=api.auth(api.admin)
    )
    body = first.json()
    second = await entries(api, action="jobs.submit", cursor=body["next_cursor"])
    targets = [e["target"] for e in body["entries"] + second]
    assert targets == [j["id"] for j in reversed(jobs)]


async def test_bad_audit_filters_are_refused(api: Api) -> None:
    for params in ({"outcome": "maybe"}, {"since": "yesterday"}, {"limit": 0}):
        response = await api.client.get("/v1/audit", params=params, headers=api.auth(api.admin))
        assert_error(response, 422, "invalid")


async def test_the_audit_log_cannot_be_changed_through_the_api(api: Api) -> None:
    await api.submit()
    for method in ("DELETE", "PUT", "PATCH", "POST"):
        response = await api.client.request(method, "/v1/audit", headers=api.auth(api.admin))
        assert response.status_code == 405
    assert len(await entries(api, action="jobs.submit")) == 1
