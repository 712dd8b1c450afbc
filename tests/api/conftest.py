"""The API under test: the real services on a store, called through the ASGI app.

The store is the in-memory one unless a test module asks for every backend with
``store_backend = every_store`` (imported from here): memory, a SQLite file, and a PostgreSQL
schema of its own (the factories of ``tests/contract/conftest.py``).

Jobs are driven by hand (claim, write logs, complete) so each test decides exactly what a
worker did, and publishes the matching events as the local pool would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from faena.adapters.local_bus import LocalBus
from faena.api.app import create_app
from faena.domain.events import Event
from faena.domain.jobs import DEFAULT_TENANT, Job, JobState
from faena.domain.logs import LogChunk, LogStream
from faena.domain.tenants import Tenant
from faena.ports.clock import SystemClock
from faena.ports.store import ClaimParams, CompleteParams, Completion
from faena.services.audit import AuditLog
from faena.services.catalog import KindCatalog
from faena.services.keys import KeyService
from faena.services.orchestrator import Orchestrator, state_event
from faena.services.tenants import TenantService
from tests.contract.conftest import BACKENDS

KINDS = ("noop", "shell", "sleep", "echo")
MAX_BODY = 64 * 1024


@dataclass
class Api:
    """An app, a client on it, and keys: ``admin`` (admin), ``writer`` (jobs:read+write),
    ``reader`` (jobs:read) in the default tenant, ``other`` (jobs:read+write) in tenant b."""

    store: Any  # a JobStore that is also a TenantStore and an AuditStore
    bus: LocalBus
    orchestrator: Orchestrator
    keys: KeyService
    client: httpx.AsyncClient
    admin: str
    writer: str
    reader: str
    other: str
    audit: AuditLog
    tenants: TenantService

    def auth(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    async def submit(
        self, kind: str = "noop", key: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/jobs", json={"kind": kind, **fields}, headers=self.auth(key or self.writer)
        )
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()
        return data

    async def start(self, job_id: str) -> Job:
        """Claim the job as a worker would: it must be the next runnable one of its queue and
        kind."""
        job = await self.orchestrator.get(DEFAULT_TENANT, job_id)
        now = self.orchestrator.clock.now()
        claimed: list[Job] = await self.store.claim(
            ClaimParams(
                worker_id="test-worker",
                limit=1,
                lease_s=60,
                now=now,
                kinds=frozenset({job.kind}),
                queues=frozenset({job.queue}),
            )
        )
        assert [j.id for j in claimed] == [job_id]
        self.bus.publish([state_event(j, now) for j in claimed])
        return claimed[0]

    async def write(self, job: Job, *lines: str, stream: LogStream = LogStream.STDOUT) -> None:
        now = self.orchestrator.clock.now()
        existing = await self.orchestrator.read_logs(job.tenant, job.id)
        chunks = [
            LogChunk(job.id, len(existing) + i, stream, line, now, job.tenant, job.attempts)
            for i, line in enumerate(lines)
        ]
        await self.store.append_logs(chunks)
        self.bus.publish([Event("job.log", job.tenant, job.id, {"seq": chunks[-1].seq}, now)])

    async def finish(
        self,
        job: Job,
        state: JobState = JobState.SUCCEEDED,
        result: Any = None,
        error: str | None = None,
    ) -> Job:
        now = self.orchestrator.clock.now()
        done: Job
        [done] = await self.store.complete_many(
            CompleteParams([Completion(job.id, job.attempts, state, result, error)], now)
        )
        self.bus.publish([state_event(done, now)])
        return done

    async def run(self, job_id: str, *lines: str, result: Any = None) -> Job:
        job = await self.start(job_id)
        if lines:
            await self.write(job, *lines)
        return await self.finish(job, result=result)


def catalog(kinds: Sequence[str] = KINDS) -> KindCatalog:
    found = KindCatalog()
    found.add_source(lambda: kinds)
    return found


@pytest.fixture
def store_backend() -> str:
    """The store the ``api`` fixture runs on; a module overrides it with ``every_store``."""
    return "memory"


@pytest.fixture(name="store_backend", params=sorted(BACKENDS))
def every_store(request: pytest.FixtureRequest) -> str:
    """Import as ``store_backend`` to run a module's API tests on every store."""
    backend: str = request.param
    return backend


@pytest.fixture
async def api(store_backend: str, tmp_path: Path) -> AsyncIterator[Api]:
    store: Any = await BACKENDS[store_backend](tmp_path)
    await store.open()
    bus = LocalBus()
    clock = SystemClock()
    orchestrator = Orchestrator(store, bus, clock, catalog())
    keys = KeyService(store, clock, tenants=store)
    tenants = TenantService(store, clock)
    audit = AuditLog(store, clock)
    await store.create_tenant(Tenant("b", clock.now()))
    admin = (await keys.create(DEFAULT_TENANT, "admin", ["admin"])).plaintext
    writer = (await keys.create(DEFAULT_TENANT, "w", ["jobs:read", "jobs:write"])).plaintext
    reader = (await keys.create(DEFAULT_TENANT, "r", ["jobs:read"])).plaintext
    other = (await keys.create("b", "other", ["jobs:read", "jobs:write"])).plaintext
    app = create_app(
        orchestrator,
        keys,
        max_body_bytes=MAX_BODY,
        sse_keepalive_s=0.05,
        tenants=tenants,
        audit=audit,
    )
    transport = httpx.ASGITransport(app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://faena.test") as client:
            yield Api(
                store, bus, orchestrator, keys, client, admin, writer, reader, other, audit, tenants
            )
    finally:
        await audit.close()
        await store.close()


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    """The response is the error shape with this status and code; returns its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "request_id"}
    assert body["error"]["code"] == code
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    message: str = body["error"]["message"]
    assert message
    assert "Traceback" not in message
    return message
