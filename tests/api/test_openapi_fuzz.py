"""Schemathesis over the whole OpenAPI surface of a real server (``build_runtime``: every
service, on SQLite and on PostgreSQL, behind uvicorn on 127.0.0.1): no request it can make
gets a 5xx, and every response matches its documented status, media type and schema.

Every operation is fuzzed except the three that would make the server reach out to a host the
request names (tests talk to 127.0.0.1 only; see ``OUTBOUND``): the rest of those families —
listing, reading and deleting subscriptions, providers and mail watches, LLM policies, budgets,
usage and calls, and ``POST /v1/ask`` (with no provider stored, it matches workflows by
embeddings alone and calls no LLM) — run like any other route. Long-polls (``wait``) and
streams (``follow``) are capped so no example hangs.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from faena.bootstrap import Runtime, build_runtime
from faena.config import Settings

KEY = "fk_fuzz_admin_key_0123456789abcdef"
START_TIMEOUT_S = 30.0
EXAMPLES = 6  # per operation and backend: the whole surface twice in well under a minute
# (method, path) → why it is not fuzzed.
OUTBOUND = {
    ("POST", "/v1/subscriptions"): "a subscription makes the relay POST every event of the "
    "tenant to its URL, any host the fuzzer writes",
    ("PUT", "/v1/llm/providers/{name}"): "a provider's base_url is where /v1/ask and llm steps "
    "send prompts; with none stored, /v1/ask stays local",
    ("POST", "/v1/mail/watches"): "the mail watcher connects to a new watch's IMAP host at once",
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class RuntimeServer:
    """A full faena runtime on ``database_url`` behind uvicorn, in a thread with its loop."""

    def __init__(self, database_url: str, home: Path) -> None:
        self.settings = Settings(
            database_url=database_url,
            home=home,
            bootstrap_key=KEY,
            workers=0,
            grpc_port=0,
            rate_limits=False,
            log_level="error",
        )
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._server: uvicorn.Server | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        runtime: Runtime | None = None
        try:
            runtime = build_runtime(self.settings)
            await runtime.start()
            config = uvicorn.Config(
                runtime.app(), log_level="warning", lifespan="off", loop="asyncio"
            )
            self._server = uvicorn.Server(config)
            await self._server.serve(sockets=[self._sock])
        except BaseException as e:  # reported by start()
            self._failure = e
            raise
        finally:
            if runtime is not None:
                await runtime.stop()

    def start(self) -> RuntimeServer:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._failure is not None:
                raise RuntimeError("the fuzz server failed to start") from self._failure
            if self._server is not None and self._server.started:
                return self
            time.sleep(0.02)
        raise RuntimeError("the fuzz server did not start in time")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(30)
        self._sock.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    if request.param == "sqlite":
        server = RuntimeServer(f"sqlite:///{home}/faena.db", home).start()
        yield server.url
        server.stop()
        return
    from tests.acceptance.conftest import _postgres_database

    for url in _postgres_database():
        server = RuntimeServer(url, home).start()
        try:
            yield server.url
        finally:
            server.stop()


def fuzz(operation: Any, mode: GenerationMode, live: str) -> None:
    """Up to EXAMPLES requests for one operation; raises the first failing check."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the report names the call
    )
    def run(case: schemathesis.Case) -> None:
        query = case.query or {}
        if "wait" in query:
            query["wait"] = 0
        if "follow" in query:
            query["follow"] = False
        response = case.call(base_url=live, headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
        case.validate_response(response, checks=CHECKS)

    run()


def test_no_request_gets_a_server_error_or_an_undocumented_answer(live: str) -> None:
    schema = schemathesis.openapi.from_url(f"{live}/openapi.json")
    for method, path in OUTBOUND:
        schema = schema.exclude(method=method, path=path)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        # a negative case needs something to break: a query parameter or a body
        negatable = bool(list(operation.query)) or bool(list(operation.body))
        modes = [GenerationMode.POSITIVE] + [GenerationMode.NEGATIVE] * negatable
        for mode in modes:
            try:
                fuzz(operation, mode, live)
            except Unsatisfiable:
                continue  # nothing of this kind can be generated for this operation
            except (Exception, BaseExceptionGroup) as failure:  # schemathesis's FailureGroup
                failures.append(f"{operation.label} ({mode.value}): {failure}")
    assert operations >= 60, "the OpenAPI document lost its operations"
    assert not failures, f"{len(failures)} failing operations:\n\n" + "\n\n".join(failures)
