"""Fixtures of the mail tests: one Dovecot for the session (a fresh IMAP user per test), faena
runtimes on every store backend, an SMTP server and an HTTP receiver."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from faena.bootstrap import Runtime, build_runtime
from faena.config import Settings
from faena.domain.jobs import DEFAULT_TENANT
from faena.worker.registry import TaskRegistry, task
from tests.conftest import POSTGRES_URL, require_service
from tests.mail.servers import Dovecot, HttpReceiver

registry = TaskRegistry()
SECRET_KEY = base64.urlsafe_b64encode(b"k" * 32).decode().rstrip("=")
ADMIN_KEY = "fk_test_admin_key_for_the_mail_tests_only"

INTAKE = """
name: intake
inputs:
  message: object
steps:
  - id: capture
    kind: capture
    with: {message: "{{ inputs.message }}"}
"""


@task(registry=registry)
async def capture(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "subject": message["subject"],
        "from": message["from"],
        "text": message["text"],
        "attachments": message["attachments"],
    }


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    # Not under pytest's tmp folder: Dovecot's mail processes run as nobody and must reach it.
    root = Path(tempfile.mkdtemp(prefix="faena-dovecot-"))
    os.chmod(root, 0o755)
    server = Dovecot(root)
    try:
        server.start()
    except OSError as e:
        shutil.rmtree(root, ignore_errors=True)
        require_service("Dovecot", e)
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def user() -> str:
    return f"u{uuid.uuid4().hex[:10]}"


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    server = HttpReceiver()
    yield server
    server.close()


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def _database(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    if kind == "memory":
        yield "memory://"
    elif kind == "sqlite":
        yield f"sqlite:///{tmp_path}/faena.db"
    else:
        name = f"faena_mail_{uuid.uuid4().hex[:10]}"
        try:
            await _admin(f'CREATE DATABASE "{name}"')
        except Exception as e:
            require_service("PostgreSQL", e)
        try:
            yield f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
        finally:
            await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with _database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
async def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database two runtimes (two servers) share: a SQLite file or PostgreSQL."""
    async with _database(request.param, tmp_path) as url:
        yield url


RuntimeFactory = Callable[..., Awaitable[Runtime]]


@pytest.fixture
async def make_runtime() -> AsyncIterator[RuntimeFactory]:
    """Started runtimes (a faena server each, without HTTP), stopped at the end."""
    started: list[Runtime] = []

    async def make(url: str, *, tasks: TaskRegistry | None = None, **settings: Any) -> Runtime:
        values: dict[str, Any] = {
            "database_url": url,
            "workers": 4,
            "bootstrap_key": ADMIN_KEY,
            "mail_scan_s": 0.1,
            "secret_key": SECRET_KEY,
            "rate_limits": False,
            "shutdown_grace_s": 2.0,
            "retention_days": 0,
        }
        values.update(settings)
        runtime = build_runtime(Settings(**values), registry=tasks or registry)
        await runtime.start()
        started.append(runtime)
        return runtime

    yield make
    for runtime in reversed(started):
        await runtime.stop()


async def put_secret(runtime: Runtime, name: str, value: str) -> None:
    secrets = getattr(runtime, "secrets", None)
    assert secrets is not None, "the runtime has no secret service"
    await secrets.put(DEFAULT_TENANT, name, value)


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 20.0, interval: float = 0.05
) -> Any:
    """``check()``'s first truthy value; AssertionError after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {timeout}s: {check}")
        await asyncio.sleep(interval)
