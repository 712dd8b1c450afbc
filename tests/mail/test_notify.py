"""``notify.webhook``, ``notify.slack`` and ``notify.email`` against a local HTTP receiver and
SMTP server: signed, retried, grouped, and behind a per-endpoint circuit breaker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from faena.bootstrap import Runtime
from faena.domain.errors import ValidationError
from faena.domain.jobs import DEFAULT_TENANT, Job, JobState
from faena.domain.signatures import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from faena.services.orchestrator import JobRequest
from tests.mail.conftest import RuntimeFactory
from tests.mail.servers import HttpReceiver, SmtpServer, start_smtp

T = DEFAULT_TENANT


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = start_smtp()
    yield server
    server.controller.stop()


async def _submit(runtime: Runtime, kind: str, payloads: list[Any], **options: Any) -> list[Job]:
    submitted = await runtime.orchestrator.submit(
        T, [JobRequest(kind=kind, payload=p, **options) for p in payloads]
    )
    return list(
        await asyncio.gather(*(runtime.orchestrator.wait(T, s.job.id, 20.0) for s in submitted))
    )


async def test_a_webhook_is_a_signed_json_post_with_its_delivery_recorded(
    make_runtime: RuntimeFactory, receiver: HttpReceiver
) -> None:
    runtime = await make_runtime("memory://")
    [job] = await _submit(
        runtime,
        "notify.webhook",
        [
            {
                "url": receiver.url(),
                "secret": "whsec",
                "event": "invoice.large",
                "body": {"amount": "{{ total }}", "note": "Invoice {{ number }} is due"},
                "data": {"total": 1250, "number": 42},
            }
        ],
    )
    assert job.state is JobState.SUCCEEDED, job.error
    [request] = receiver.requests
    assert request.json() == {"amount": "1250", "note": "Invoice 42 is due"}
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["x-faena-event-type"] == "invoice.large"
    reason = verify(
        "whsec",
        headers[TIMESTAMP_HEADER.lower()],
        headers[SIGNATURE_HEADER.lower()],
        request.body,
        time.time(),
    )
    assert reason is None
    assert job.result["delivered"] is True and job.result["status"] == 200
    assert job.result["endpoint"] == receiver.url() and job.result["latency_ms"] >= 0


async def test_a_500_fails_the_attempt_and_the_retry_delivers(
    make_runtime: RuntimeFactory, receiver: HttpReceiver
) -> None:
    runtime = await make_runtime("memory://")
    receiver.statuses = [500]
    [job] = await _submit(
        runtime,
        "notify.webhook",
        [{"url": receiver.url(), "body": {"x": 1}}],
        max_attempts=3,
        backoff_s=0.05,
    )
    assert job.state is JobState.SUCCEEDED and job.attempts == 2
    assert len(receiver.requests) == 2
    assert job.result["status"] == 200 and job.result["attempt"] == 2


async def test_a_4xx_is_not_retried(make_runtime: RuntimeFactory, receiver: HttpReceiver) -> None:
    runtime = await make_runtime("memory://")
    receiver.statuses = [404]
    [job] = await _submit(
        runtime, "notify.webhook", [{"url": receiver.url()}], max_attempts=3, backoff_s=0.05
    )
    assert job.state is JobState.FAILED and job.attempts == 1
    assert job.error == f"HTTP 404 from {receiver.url()}"
    assert job.result["status"] == 404 and job.result["delivered"] is False


async def test_the_breaker_opens_after_failures_in_a_row_and_skips_the_endpoint(
    make_runtime: RuntimeFactory, receiver: HttpReceiver
) -> None:
    runtime = await make_runtime(
        "memory://", notify_breaker_failures=2, notify_breaker_reset_s=60.0
    )
    receiver.statuses = [500] * 10
    outcomes = []
    for _ in range(3):
        [job] = await _submit(runtime, "notify.webhook", [{"url": receiver.url()}])
        outcomes.append(job)
    assert [j.state for j in outcomes] == [JobState.FAILED] * 3
    assert len(receiver.requests) == 2  # the third never reached it
    assert "circuit open" in (outcomes[2].error or "")
    assert outcomes[2].result["breaker"] == "open"
    other = HttpReceiver()  # another endpoint has its own breaker
    try:
        [job] = await _submit(runtime, "notify.webhook", [{"url": other.url()}])
        assert job.state is JobState.SUCCEEDED
    finally:
        other.close()


async def test_slack_messages_sent_at_once_to_one_channel_are_grouped(
    make_runtime: RuntimeFactory, receiver: HttpReceiver
) -> None:
    runtime = await make_runtime("memory://", notify_group_s=0.3)
    jobs = await _submit(
        runtime,
        "notify.slack",
        [
            {"url": receiver.url("/slack"), "text": "Invoice {{ n }} received", "data": {"n": n}}
            for n in range(3)
        ],
    )
    assert [j.state for j in jobs] == [JobState.SUCCEEDED] * 3
    [request] = receiver.requests
    lines = request.json()["text"].splitlines()
    assert sorted(lines) == [f"Invoice {n} received" for n in range(3)]
    assert {j.result["grouped"] for j in jobs} == {3}


async def test_notify_email_groups_messages_to_the_same_recipients_in_a_digest(
    make_runtime: RuntimeFactory, smtp: SmtpServer
) -> None:
    runtime = await make_runtime(
        "memory://",
        notify_group_s=0.3,
        smtp_url=f"smtp://127.0.0.1:{smtp.port}",
        smtp_from="alerts@acme.example",
    )
    jobs = await _submit(
        runtime,
        "notify.email",
        [
            {
                "to": "finance@acme.example",
                "subject": "Invoice {{ n }}",
                "text": "Total {{ n }}00",
                "data": {"n": n},
            }
            for n in (1, 2)
        ],
    )
    assert [j.state for j in jobs] == [JobState.SUCCEEDED] * 2, [j.error for j in jobs]
    [msg] = smtp.wait_for(1)
    assert msg["Subject"].startswith("2 notifications: Invoice ")
    body = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Total 100" in body and "Total 200" in body


@pytest.mark.parametrize(
    ("kind", "payload", "message"),
    [
        ("notify.webhook", {"body": {}}, "'url' is required"),
        ("notify.webhook", {"url": "ftp://x"}, "http:// or https://"),
        ("notify.webhook", {"url": "http://x", "body": {}, "text": "y"}, "not both"),
        ("notify.slack", {"url": "http://x"}, "'text' is required"),
        ("notify.slack", {"url": "http://x", "text": "{% if %}", "data": {"a": 1}}, "not a valid"),
        ("notify.email", {"to": "a@b.example", "text": "x"}, "required strings"),
        ("notify.webhook", {"url": "http://x", "timeout_s": 0}, "timeout_s"),
    ],
)
async def test_a_bad_notification_is_refused_at_submit(
    make_runtime: RuntimeFactory, kind: str, payload: dict[str, Any], message: str
) -> None:
    runtime = await make_runtime("memory://")
    with pytest.raises(ValidationError, match=message):
        await runtime.orchestrator.submit(T, [JobRequest(kind=kind, payload=payload)])
