"""A real faena server for the dashboard and WebSocket tests: the in-memory runtime (local
pool included, so shell jobs really run) behind uvicorn with WebSockets on, in a thread, on an
ephemeral 127.0.0.1 port. It also creates a key of a second tenant (``other_key``)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import httpx
import uvicorn

from faena.testing import InMemoryFaena

START_TIMEOUT_S = 10.0
OTHER_TENANT = "tenant-b"


class UiServer:
    def __init__(self, workers: int = 8) -> None:
        self._workers = workers
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = ""
        self.other_key = ""
        self.faena: InMemoryFaena | None = None
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self._failure: BaseException | None = None

    async def _serve(self) -> None:
        try:
            async with InMemoryFaena(workers=self._workers) as faena:
                self.faena = faena
                self.api_key = faena.api_key
                keys = faena.runtime.keys
                scopes = ["jobs:read", "jobs:write", "workflows:read", "workflows:write"]
                self.other_key = (await keys.create(OTHER_TENANT, "b", scopes)).plaintext
                self._loop = asyncio.get_running_loop()
                config = uvicorn.Config(
                    faena.app,
                    log_level="warning",
                    lifespan="off",
                    ws="websockets-sansio",
                    loop="asyncio",
                )
                self._server = uvicorn.Server(config)
                await self._server.serve(sockets=[self._sock])
        except BaseException as e:  # reported by start()
            self._failure = e
            raise

    def start(self) -> UiServer:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._failure is not None:
                raise RuntimeError("the test server failed to start") from self._failure
            if self._server is not None and self._server.started:
                return self
            time.sleep(0.01)
        raise RuntimeError("the test server did not start in time")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()

    def call(self, coro: Any) -> Any:
        """Run a coroutine on the server's loop (to reach its services directly)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def api(self, method: str, path: str, key: str | None = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {key or self.api_key}"}
        response = httpx.request(method, self.url + path, headers=headers, timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    def submit(self, kind: str, payload: Any = None, key: str | None = None, **fields: Any) -> Any:
        return self.api("POST", "/v1/jobs", key, json={"kind": kind, "payload": payload, **fields})

    def wait(self, job_id: str, timeout: float = 10.0) -> Any:
        return self.api("GET", f"/v1/jobs/{job_id}?wait={timeout}")
