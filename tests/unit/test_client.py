"""The sync SDK (``faena.Client``) against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

import faena
from faena.client import Client, Job, JobHandle, LogChunk
from faena.worker.registry import TaskRegistry, task
from tests.api.live import LiveServer

registry = TaskRegistry()
release = threading.Event()


@task(registry=registry)
async def add(a: int, b: int) -> int:
    return a + b


@task(registry=registry)
async def explode() -> None:
    raise RuntimeError("kaboom")


@task(registry=registry)
async def nap(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "rested"


@task(registry=registry)
async def talk(lines: int) -> int:
    for i in range(lines):
        faena.current_job().log(f"line {i}")
        await asyncio.sleep(0.01)
    return lines


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    live = LiveServer(registry).start()
    yield live
    live.stop()


@pytest.fixture
def client(server: LiveServer) -> Iterator[Client]:
    with Client(server.url, server.api_key, timeout=10) as c:
        yield c


def test_a_submitted_task_returns_its_value(client: Client) -> None:
    assert client.submit("add", {"a": 2, "b": 3}).wait(timeout=10).result == 5


def test_submit_returns_a_handle_on_the_queued_job(client: Client) -> None:
    handle = client.submit("nap", {"seconds": 0}, priority=3, labels={}, queue="default")
    assert isinstance(handle, JobHandle)
    assert handle.created
    assert handle.job.priority == 3
    assert handle.id == handle.job.id


def test_the_job_has_datetimes(client: Client) -> None:
    job = client.submit("add", {"a": 1, "b": 1}).wait(timeout=10)
    assert isinstance(job, Job)
    assert job.created_at is not None and job.created_at.tzinfo is not None
    assert job.finished_at is not None and job.finished_at >= job.created_at


def test_options_reach_the_server(client: Client) -> None:
    run_at = datetime.now(UTC) + timedelta(hours=1)
    job = client.submit("add", {"a": 1, "b": 1}, retries=2, timeout=5, run_at=run_at).job
    assert (job.max_attempts, job.timeout_s, job.state) == (3, 5.0, "scheduled")
    assert job.run_at is not None and abs((job.run_at - run_at).total_seconds()) < 0.001
    client.cancel(job.id)


def test_a_repeated_idempotency_key_returns_the_first_job(client: Client) -> None:
    first = client.submit("add", {"a": 1, "b": 2}, idempotency_key="client-test-1")
    again = client.submit("add", {"a": 1, "b": 2}, idempotency_key="client-test-1")
    assert (again.id, again.created) == (first.id, False)


def test_wait_raises_wait_timeout_when_time_is_up(client: Client) -> None:
    handle = client.submit("nap", {"seconds": 30})
    with pytest.raises(faena.WaitTimeout, match=r"still (queued|running) after 0.2s") as caught:
        handle.wait(timeout=0.2)
    assert caught.value.job is not None and caught.value.job.id == handle.id
    handle.cancel()


def test_a_failed_job_is_returned_with_its_error(client: Client) -> None:
    job = client.submit("explode").wait(timeout=10)
    assert job.state == "failed"
    assert job.error is not None and "kaboom" in job.error


def test_refresh_fetches_the_current_state(client: Client) -> None:
    handle = client.submit("add", {"a": 0, "b": 0})
    handle.wait(timeout=10)
    assert handle.refresh().state == "succeeded"
    assert handle.result == 0


def test_submit_many_returns_handles_in_order(client: Client) -> None:
    handles = client.submit_many([{"kind": "add", "payload": {"a": i, "b": 1}} for i in range(5)])
    assert [h.wait(timeout=10).result for h in handles] == [1, 2, 3, 4, 5]


def test_get_and_list_jobs(client: Client) -> None:
    handle = client.submit("add", {"a": 1, "b": 1}, queue="listing")
    assert client.get(handle.id).id == handle.id
    page = client.list_jobs(queue="listing", state=["queued", "running", "succeeded"])
    assert handle.id in [j.id for j in page.jobs]


def test_list_pages_with_the_cursor(client: Client) -> None:
    ids = [client.submit("add", {"a": 1, "b": 1}, queue="paged").id for _ in range(3)]
    first = client.list_jobs(queue="paged", limit=2)
    second = client.list_jobs(queue="paged", limit=2, cursor=first.next_cursor)
    assert [j.id for j in first.jobs + second.jobs] == ids[::-1]


def test_cancel_and_retry(client: Client) -> None:
    handle = client.submit("nap", {"seconds": 0}, delay=60)
    assert client.cancel(handle.id).state == "cancelled"
    assert client.retry(handle.id).state in {"queued", "running", "succeeded"}


def test_logs_of_a_job(client: Client) -> None:
    handle = client.submit("talk", {"lines": 3})
    handle.wait(timeout=10)
    chunks = handle.logs()
    assert all(isinstance(c, LogChunk) for c in chunks)
    assert "".join(c.data for c in chunks) == "line 0\nline 1\nline 2\n"


def test_follow_logs_streams_until_the_end(client: Client) -> None:
    handle = client.submit("talk", {"lines": 5})
    followed = "".join(c.data for c in client.follow_logs(handle.id))
    assert followed == "".join(f"line {i}\n" for i in range(5))


def test_stats_and_kinds(client: Client) -> None:
    assert {"add", "shell", "noop"} <= set(client.kinds())
    assert set(client.stats()) == {"by_state", "by_queue"}


def test_server_errors_are_the_domain_classes_with_the_server_message(client: Client) -> None:
    with pytest.raises(faena.NotFound, match="no job 'missing'"):
        client.get("missing")
    with pytest.raises(faena.ValidationError, match="unknown kind 'nope'"):
        client.submit("nope")
    done = client.submit("add", {"a": 1, "b": 1})
    done.wait(timeout=10)
    with pytest.raises(faena.Conflict):
        client.cancel(done.id)


def test_a_wrong_key_is_unauthorized(server: LiveServer) -> None:
    with Client(server.url, "fk_wrong") as c, pytest.raises(faena.Unauthorized):
        c.kinds()


def test_a_key_without_the_scope_is_forbidden(server: LiveServer, client: Client) -> None:
    reader = client.create_key("reader", ["jobs:read"])
    with Client(server.url, reader.key) as c, pytest.raises(faena.Forbidden, match="jobs:write"):
        c.submit("add", {"a": 1, "b": 1})


def test_keys_are_created_listed_and_revoked(client: Client) -> None:
    created = client.create_key("sdk", ["jobs:read"])
    assert created.key is not None and created.key.startswith("fk_")
    assert created.id in [k.id for k in client.list_keys()]
    assert client.revoke_key(created.id).revoked_at is not None


def test_a_payload_that_is_not_json_is_refused_before_sending(client: Client) -> None:
    with pytest.raises(faena.ValidationError, match="not JSON-serializable"):
        client.submit("add", {"a": object()})


def test_an_unreachable_server_is_unavailable_naming_its_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        with (
            Client(f"http://127.0.0.1:{port}", "fk_x") as c,
            pytest.raises(faena.Unavailable) as caught,
        ):
            c.kinds()
    assert str(caught.value) == f"cannot reach faena at http://127.0.0.1:{port}: connection refused"
