"""GET /v1/jobs/{id}/logs: pages of chunks, and ``?follow=true`` as Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.api.conftest import Api, assert_error, every_store

store_backend = every_store  # every test here runs on memory, SQLite and PostgreSQL


def parse_events(text: str) -> list[dict[str, Any]]:
    """The SSE frames of a complete stream, as dicts (comments kept as ``comment``)."""
    events = []
    for frame in text.split("\n\n"):
        if not frame.strip():
            continue
        event: dict[str, Any] = {}
        for line in frame.split("\n"):
            name, _, value = line.partition(":")
            if name == "":
                event["comment"] = value.strip()
            else:
                event[name] = value.removeprefix(" ")
        if "data" in event:
            event["data"] = json.loads(event["data"])
        events.append(event)
    return events


async def follow(api: Api, job_id: str, **headers: str) -> list[dict[str, Any]]:
    response = await api.client.get(
        f"/v1/jobs/{job_id}/logs?follow=true", headers={**api.auth(api.reader), **headers}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    return parse_events(response.text)


async def test_logs_are_read_in_order_with_cursors(api: Api) -> None:
    job = await api.submit("shell", key=api.admin, payload={"command": "echo"})
    await api.run(job["id"], "hello\n", "world\n")
    response = await api.client.get(f"/v1/jobs/{job['id']}/logs", headers=api.auth(api.reader))
    body = response.json()
    assert [c["data"] for c in body["chunks"]] == ["hello\n", "world\n"]
    assert [c["seq"] for c in body["chunks"]] == [0, 1]
    assert body["next_cursor"] == body["chunks"][-1]["cursor"]
    assert set(body["chunks"][0]) == {"cursor", "seq", "attempt", "stream", "data", "ts"}


async def test_logs_are_read_after_a_cursor(api: Api) -> None:
    job = await api.submit()
    await api.run(job["id"], "a", "b", "c")
    first = (
        await api.client.get(f"/v1/jobs/{job['id']}/logs?limit=1", headers=api.auth(api.reader))
    ).json()
    rest = (
        await api.client.get(
            f"/v1/jobs/{job['id']}/logs?after={first['next_cursor']}",
            headers=api.auth(api.reader),
        )
    ).json()
    assert [c["data"] for c in first["chunks"] + rest["chunks"]] == ["a", "b", "c"]


async def test_a_job_without_output_has_no_chunks(api: Api) -> None:
    job = await api.submit()
    response = await api.client.get(f"/v1/jobs/{job['id']}/logs", headers=api.auth(api.reader))
    assert response.json() == {"chunks": [], "next_cursor": 0}


async def test_logs_of_an_unknown_job_are_a_404(api: Api) -> None:
    response = await api.client.get("/v1/jobs/nope/logs", headers=api.auth(api.reader))
    assert_error(response, 404, "not_found")


async def test_following_an_unknown_job_is_a_404_before_any_stream(api: Api) -> None:
    response = await api.client.get("/v1/jobs/nope/logs?follow=true", headers=api.auth(api.reader))
    assert_error(response, 404, "not_found")


async def test_following_a_finished_job_sends_its_output_then_end(api: Api) -> None:
    job = await api.submit()
    await api.run(job["id"], "hello\n")
    events = [e for e in await follow(api, job["id"]) if "comment" not in e]
    assert [e["event"] for e in events] == ["log", "end"]
    assert events[0]["data"]["data"] == "hello\n"
    assert events[0]["id"] == str(events[0]["data"]["cursor"])
    assert events[1]["data"] == {"state": "succeeded"}


async def test_following_streams_output_as_it_is_written(api: Api) -> None:
    job = await api.submit()
    reader = asyncio.create_task(follow(api, job["id"]))
    started = await api.start(job["id"])
    await api.write(started, "one\n")
    await api.write(started, "two\n")
    await api.finish(started)
    events = [e for e in await asyncio.wait_for(reader, 5) if "comment" not in e]
    assert [e["data"].get("data", e["data"].get("state")) for e in events] == [
        "one\n",
        "two\n",
        "succeeded",
    ]


async def test_following_resumes_after_last_event_id(api: Api) -> None:
    job = await api.submit()
    await api.run(job["id"], "a", "b", "c")
    chunks = (
        await api.client.get(f"/v1/jobs/{job['id']}/logs", headers=api.auth(api.reader))
    ).json()["chunks"]
    events = await follow(api, job["id"], **{"Last-Event-ID": str(chunks[0]["cursor"])})
    assert [e["data"].get("data") for e in events if e.get("event") == "log"] == ["b", "c"]


async def test_following_sends_keepalives_while_nothing_happens(api: Api) -> None:
    job = await api.submit()
    reader = asyncio.create_task(follow(api, job["id"]))
    await asyncio.sleep(0.2)  # the fixture's keepalive interval is 0.05 s
    started = await api.start(job["id"])
    await api.finish(started)
    events = await asyncio.wait_for(reader, 5)
    assert {"comment": "keepalive"} in events


async def test_a_malformed_last_event_id_is_refused(api: Api) -> None:
    job = await api.submit()
    response = await api.client.get(
        f"/v1/jobs/{job['id']}/logs?follow=true",
        headers={**api.auth(api.reader), "Last-Event-ID": "yesterday"},
    )
    assert "Last-Event-ID" in assert_error(response, 422, "invalid")


@pytest.mark.parametrize("query", ["after=-1", "limit=0", "limit=1001", "follow=perhaps"])
async def test_bad_log_queries_are_refused(api: Api, query: str) -> None:
    job = await api.submit()
    response = await api.client.get(
        f"/v1/jobs/{job['id']}/logs?{query}", headers=api.auth(api.reader)
    )
    assert_error(response, 422, "invalid")
