"""``WS /v1/events``: live events of the caller's tenant, for the dashboard."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.ui.server import UiServer


def ws_url(server: UiServer, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}/v1/events{query}"


def receive(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    message: Any = json.loads(ws.recv(timeout=timeout))
    assert isinstance(message, dict)
    return message


def events_until(
    ws: ClientConnection, job_id: str, state: str, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Every event received until ``job_id`` reaches ``state``."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = receive(ws, deadline - time.monotonic())
        seen.append(event)
        if event.get("job_id") == job_id and event.get("data", {}).get("state") == state:
            return seen
    raise AssertionError(f"{job_id} did not reach {state}: {seen}")


def test_a_token_in_the_query_streams_the_job_states_of_the_tenant(server: UiServer) -> None:
    with connect(ws_url(server, f"?token={server.api_key}")) as ws:
        assert receive(ws) == {"type": "hello", "tenant": "default"}
        job = server.submit("noop")
        seen = events_until(ws, job["id"], "succeeded")
    states = [e["data"]["state"] for e in seen if e["job_id"] == job["id"]]
    # Queued then claimed, or (an idle local pool, FAENA_START_ON_SUBMIT) running from the submit.
    assert states in (["queued", "running", "succeeded"], ["running", "succeeded"])
    assert {e["type"] for e in seen if e["type"].startswith("job.")} == {"job.state"}
    assert seen[-1]["data"]["kind"] == "noop"


def test_the_key_can_come_as_the_first_message(server: UiServer) -> None:
    with connect(ws_url(server)) as ws:
        ws.send(json.dumps({"token": server.api_key}))
        assert receive(ws)["type"] == "hello"


def test_filters_by_type_and_job(server: UiServer) -> None:
    noise = server.submit("shell", {"command": "echo noise"})
    job = server.submit("shell", {"command": "sleep 0.3; echo hello"})
    query = f"?token={server.api_key}&types=job.log&job_id={job['id']}"
    with connect(ws_url(server, query)) as ws:
        assert receive(ws)["type"] == "hello"
        event = receive(ws)
    assert event["type"] == "job.log"
    assert event["job_id"] == job["id"] != noise["id"]


def test_another_tenants_events_are_not_sent(server: UiServer) -> None:
    with connect(ws_url(server, f"?token={server.other_key}")) as ws:
        assert receive(ws) == {"type": "hello", "tenant": "tenant-b"}
        server.submit("noop")  # the default tenant's
        mine = server.submit("noop", key=server.other_key)
        seen = events_until(ws, mine["id"], "succeeded")
    assert {e["job_id"] for e in seen if e["type"].startswith("job.")} == {mine["id"]}


def next_of(ws: ClientConnection, type_: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = receive(ws, deadline - time.monotonic())
        if event["type"] == type_:
            return event
    raise AssertionError(f"no {type_} event in {timeout}s")


def test_the_local_pools_heartbeats_reach_the_operator_only(server: UiServer) -> None:
    """A local pool serves every tenant: like ``GET /v1/workers``, only the operator (the
    ``default`` tenant) is told about it."""
    query = "&types=worker.,job.state"
    with (
        connect(ws_url(server, f"?token={server.api_key}{query}")) as operator,
        connect(ws_url(server, f"?token={server.other_key}{query}")) as tenant,
    ):
        assert receive(operator)["type"] == receive(tenant)["type"] == "hello"
        beat = next_of(operator, "worker.heartbeat")  # the pool's record: every 3 s
        mine = server.submit("noop", key=server.other_key)  # ends tenant-b's wait below
        seen = events_until(tenant, mine["id"], "succeeded")
    listed = {w["id"] for w in server.api("GET", "/v1/workers")["workers"]}
    assert beat["data"]["worker_id"] in listed
    assert beat["data"]["kind"] == "local" and beat["data"]["state"] == "connected"
    assert set(beat["data"]["load"]) == {"cpu_percent", "memory_percent"}
    assert beat["job_id"] is None
    assert not [e for e in seen if e["type"].startswith("worker.")]


def test_audit_events_go_only_to_keys_that_may_read_the_audit_log(server: UiServer) -> None:
    admin = server.api_key  # admin of the default tenant: audit:read
    query = "&types=audit.,job.state"
    with (
        connect(ws_url(server, f"?token={admin}{query}")) as auditor,
        connect(ws_url(server, f"?token={server.other_key}{query}")) as reader,
    ):
        assert receive(auditor)["type"] == receive(reader)["type"] == "hello"
        server.submit("noop")  # audited in the default tenant
        written = next_of(auditor, "audit.written")
        assert written["data"]["count"] >= 1
        mine = server.submit("noop", key=server.other_key)  # audited in tenant-b
        seen = events_until(reader, mine["id"], "succeeded")
    assert not [e for e in seen if e["type"].startswith("audit.")]  # no audit:read scope


@pytest.mark.parametrize("query", ["?token=fk_not_a_key_of_this_server_000000", ""])
def test_a_bad_key_is_told_why_and_closed_with_4401(server: UiServer, query: str) -> None:
    with connect(ws_url(server, query)) as ws:
        if not query:
            ws.send(json.dumps({"token": "nope"}))
        error = receive(ws)
        assert error["type"] == "error"
        assert error["error"]["code"] == "unauthorized"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401
