"""A real faena server for client and CLI tests: the in-memory runtime (with its local worker
pool, so ``shell`` and Python tasks really run) behind uvicorn, in a thread, on an ephemeral
127.0.0.1 port."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import httpx
import uvicorn

from faena.testing import InMemoryFaena
from faena.worker.registry import TaskRegistry

START_TIMEOUT_S = 10.0


class LiveServer:
    def __init__(self, registry: TaskRegistry | None = None) -> None:
        self._registry = registry
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = ""
        self.faena: InMemoryFaena | None = None
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self._failure: BaseException | None = None

    async def _serve(self) -> None:
        try:
            async with InMemoryFaena(workers=8, registry=self._registry) as faena:
                self.faena = faena
                self.api_key = faena.api_key
                self._loop = asyncio.get_running_loop()
                config = uvicorn.Config(
                    faena.app, log_level="warning", lifespan="off", ws="none", loop="asyncio"
                )
                self._server = uvicorn.Server(config)
                await self._server.serve(sockets=[self._sock])
        except BaseException as e:  # reported by start()
            self._failure = e
            raise

    def start(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._failure is not None:
                raise RuntimeError("the test server failed to start") from self._failure
            if self._server is not None and self._server.started:
                return self
            time.sleep(0.01)
        raise RuntimeError("the test server did not start in time")

    def call(self, coro: Any) -> Any:
        """Run a coroutine on the server's loop (to reach its services directly)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, headers={"Authorization": f"Bearer {self.api_key}"})
