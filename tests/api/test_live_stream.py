"""Log following over real HTTP: a client that leaves does not leave a follower behind."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.api.live import LiveServer


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    live = LiveServer().start()
    yield live
    live.stop()


def test_a_follower_that_disconnects_is_cleaned_up(server: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with httpx.Client(base_url=server.url, headers=headers) as client:
        payload = {"command": "echo started; sleep 30"}
        job = client.post("/v1/jobs", json={"kind": "shell", "payload": payload}).json()
        with client.stream("GET", f"/v1/jobs/{job['id']}/logs?follow=true") as response:
            for line in response.iter_lines():
                if line.startswith("event: log"):
                    break
        assert server.faena is not None
        bus = server.faena.runtime.bus
        deadline = time.monotonic() + 5
        while job["id"] in bus._by_job and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.01)
        assert job["id"] not in bus._by_job  # type: ignore[attr-defined]
        client.post(f"/v1/jobs/{job['id']}/cancel")
