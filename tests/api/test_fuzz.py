"""Random JSON at POST /v1/jobs and /v1/jobs/batch: never a 5xx, always the error shape."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faena.adapters.local_bus import LocalBus
from faena.adapters.memory.store import MemoryStore
from faena.api.app import create_app
from faena.domain.jobs import DEFAULT_TENANT
from faena.ports.clock import SystemClock
from faena.services.keys import KeyService
from faena.services.orchestrator import Orchestrator
from tests.api.conftest import KINDS, catalog

FIELDS = [
    "kind", "payload", "queue", "priority", "labels", "max_attempts", "retries", "timeout_s",
    "delay_s", "run_at", "idempotency_key", "concurrency_key", "concurrency_limit",
    "backoff_s", "backoff_max_s",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=50)
    | st.sampled_from(["", "2030-01-01T00:00:00Z", "noop", "x" * 300, "\x00", "queued"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
job_like = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=len(FIELDS)).map(
    lambda d: d | {"kind": d.get("kind", "noop")}
)
kind_ok = st.fixed_dictionaries({"kind": st.sampled_from(KINDS)}, optional={
    f: json_values for f in FIELDS if f != "kind"
})  # fmt: skip
bodies = json_values | job_like | kind_ok | st.lists(kind_ok | job_like, max_size=3)


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    body = response.json()
    if response.status_code >= 400:
        assert set(body) == {"error"}
        assert set(body["error"]) == {"code", "message", "request_id"}
        assert body["error"]["message"]
    else:
        jobs = body if isinstance(body, list) else [body]
        assert all(job["state"] in {"queued", "scheduled"} for job in jobs)


def test_random_json_never_gets_a_server_error() -> None:
    store = MemoryStore()
    clock = SystemClock()
    orchestrator = Orchestrator(store, LocalBus(), clock, catalog())
    keys = KeyService(store, clock)
    with asyncio.Runner() as runner:
        key = runner.run(keys.create(DEFAULT_TENANT, "fuzz", ["jobs:write"])).plaintext
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(create_app(orchestrator, keys)),
            base_url="http://faena.test",
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )

        async def post(path: str, raw: bytes) -> httpx.Response:
            return await client.post(path, content=raw)

        @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(body=bodies, batch=st.booleans())
        def throw(body: Any, batch: bool) -> None:
            raw = json.dumps(body, allow_nan=True).encode()
            check(runner.run(post("/v1/jobs/batch" if batch else "/v1/jobs", raw)))

        @settings(max_examples=100, deadline=None)
        @given(raw=st.binary(max_size=200))
        def throw_bytes(raw: bytes) -> None:
            check(runner.run(post("/v1/jobs", raw)))

        try:
            throw()
            throw_bytes()
        finally:
            runner.run(client.aclose())
