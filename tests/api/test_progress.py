"""Progress from a task in the local pool: on the job's JSON while the attempt runs (the
remote path is in tests/integration/test_worker_protocol.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

import faena
from faena.client import Client
from faena.worker.registry import TaskRegistry, task
from tests.api.live import LiveServer

registry = TaskRegistry()
release = threading.Event()


@task(registry=registry)
def crunch(pages: int) -> int:
    """A plain (threaded) task: reports progress from its thread, then waits to be released."""
    job = faena.current_job()
    for page in range(1, pages + 1):
        job.progress(page / pages, f"page {page} of {pages}")
    release.wait(10)
    return pages


@task(registry=registry)
async def overshoot() -> None:
    faena.current_job().progress(1.5)


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    live = LiveServer(registry).start()
    with Client(live.url, live.api_key, timeout=10) as c:
        yield c
    live.stop()


def test_a_running_jobs_json_shows_its_latest_progress(client: Client) -> None:
    release.clear()
    handle = client.submit("crunch", {"pages": 4})
    deadline = time.monotonic() + 10
    job = client.get(handle.id)
    while (job.progress is None or job.progress["fraction"] < 1.0) and time.monotonic() < deadline:
        time.sleep(0.02)
        job = client.get(handle.id)
    assert job.state == "running"
    assert job.progress is not None
    assert (job.progress["fraction"], job.progress["message"]) == (1.0, "page 4 of 4")
    release.set()
    done = handle.wait(timeout=10)
    assert done.result == 4 and done.progress is None


def test_progress_out_of_range_fails_the_task_with_a_clear_error(client: Client) -> None:
    done = client.submit("overshoot").wait(timeout=10)
    assert done.state == "failed"
    assert "progress takes a number between 0 and 1, not 1.5" in (done.error or "")
