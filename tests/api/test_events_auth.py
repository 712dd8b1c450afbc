"""``WS /v1/events`` authentication: refused keys count toward the client address's
failed-authentication limit (then the socket is refused with 4429, like HTTP's 429), share
that limit with HTTP calls, and are written to the audit log, over a real uvicorn server."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from faena.adapters.local_bus import LocalBus
from faena.adapters.memory.ratelimit import MemoryRateLimiter
from faena.adapters.memory.store import MemoryStore
from faena.api.app import create_app
from faena.domain.jobs import DEFAULT_TENANT
from faena.ports.audit import AuditQuery
from faena.ports.clock import SystemClock
from faena.services.audit import AuditLog
from faena.services.keys import KeyService
from faena.services.orchestrator import Orchestrator
from faena.services.ratelimit import RateLimits, RateLimitSettings
from tests.api.conftest import catalog

FAILURES_PER_MINUTE = 3
_addresses = itertools.count(1)


class Server:
    """create_app on the in-memory store with rate limits and the audit log, behind uvicorn;
    it trusts 127.0.0.1 as a proxy, so each test speaks from its own X-Forwarded-For."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.key = ""
        self.no_scope_key = ""
        self.audit: AuditLog | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        store = MemoryStore()
        await store.open()
        clock = SystemClock()
        keys = KeyService(store, clock)
        self.key = (await keys.create(DEFAULT_TENANT, "reader", ["jobs:read"])).plaintext
        self.no_scope_key = (await keys.create(DEFAULT_TENANT, "audit", ["audit:read"])).plaintext
        self.audit = AuditLog(store, clock)
        limits = RateLimits(
            MemoryRateLimiter(),
            RateLimitSettings(
                auth_failures_per_minute=FAILURES_PER_MINUTE, trusted_proxies=("127.0.0.1",)
            ),
        )
        orchestrator = Orchestrator(store, LocalBus(), clock, catalog())
        app = create_app(orchestrator, keys, rate_limits=limits, audit=self.audit, ui=False)
        self._loop = asyncio.get_running_loop()
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", ws="websockets-sansio", loop="asyncio"
        )
        self._server = uvicorn.Server(config)
        await self._server.serve(sockets=[self._sock])
        await self.audit.close()

    def start(self) -> Server:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not (self._server is not None and self._server.started):
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()

    def audited(self, action: str) -> list[Any]:
        assert self._loop is not None and self.audit is not None
        query = AuditQuery(tenant=DEFAULT_TENANT, action=action, limit=500)
        page = asyncio.run_coroutine_threadsafe(self.audit.list(query), self._loop).result(10)
        return list(page.entries)

    def connect(self, ip: str, token: str | None = None) -> ClientConnection:
        query = f"?token={token}" if token else ""
        return connect(
            f"ws://127.0.0.1:{self.port}/v1/events{query}",
            additional_headers={"X-Forwarded-For": ip},
        )


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    live = Server().start()
    yield live
    live.stop()


@pytest.fixture
def ip() -> str:
    """An address of this test's own (its buckets are fresh)."""
    return f"198.51.100.{next(_addresses)}"


def refusal(ws: ClientConnection) -> tuple[dict[str, Any], int, str]:
    """The error message and the close code and reason of a refused socket."""
    message = json.loads(ws.recv(timeout=5))
    assert message["type"] == "error"
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    return message["error"], closed.value.rcvd.code, closed.value.rcvd.reason


def test_failed_keys_over_the_websocket_are_limited_then_refused_with_4429(
    server: Server, ip: str
) -> None:
    for _ in range(FAILURES_PER_MINUTE):
        with server.connect(ip, "fk_wrong_key_for_the_event_stream") as ws:
            error, code, _ = refusal(ws)
        assert (code, error["code"]) == (4401, "unauthorized")
    with server.connect(ip, server.key) as ws:  # even a valid key, while the limit is used up
        error, code, reason = refusal(ws)
    assert code == 4429 and error["code"] == "rate_limited"
    assert "too many failed authentications" in reason
    assert error["retry_after"] >= 1
    with server.connect("198.51.100.250", server.key) as ws:  # another address is not held
        assert json.loads(ws.recv(timeout=5)) == {"type": "hello", "tenant": "default"}


def test_websocket_failures_count_toward_the_same_limit_as_http_calls(
    server: Server, ip: str
) -> None:
    for _ in range(FAILURES_PER_MINUTE):
        with server.connect(ip, "fk_wrong_key_for_the_event_stream") as ws:
            refusal(ws)
    response = httpx.get(
        f"http://127.0.0.1:{server.port}/v1/jobs",
        headers={"Authorization": f"Bearer {server.key}", "X-Forwarded-For": ip},
    )
    assert response.status_code == 429
    assert "too many failed authentications" in response.json()["error"]["message"]


def test_a_refused_websocket_key_is_audited_as_auth_failed(server: Server, ip: str) -> None:
    with server.connect(ip) as ws:  # the key as the first message, as the dashboard sends it
        ws.send(json.dumps({"token": "fk_wrongwrong_audited_over_the_socket"}))
        _, code, _ = refusal(ws)
    assert code == 4401
    (entry,) = [e for e in server.audited("auth.failed") if e.client_ip == ip]
    assert entry.target == "/v1/events" and entry.outcome == "denied" and entry.status == 401
    assert entry.key_prefix == "fk_wrongwro"
    assert entry.request_id


def test_a_websocket_key_without_the_scope_is_audited_as_forbidden(server: Server, ip: str) -> None:
    with server.connect(ip, server.no_scope_key) as ws:
        error, code, _ = refusal(ws)
    assert code == 4403 and "'jobs:read'" in error["message"]
    (entry,) = [e for e in server.audited("auth.forbidden") if e.client_ip == ip]
    assert entry.target == "/v1/events" and entry.status == 403
