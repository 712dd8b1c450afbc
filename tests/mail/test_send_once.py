"""Sending once per job: a job whose first attempt sent its message and then lost its worker
(the lease expired before the attempt was completed) is run again, and the later attempt
returns the recorded send instead of sending a second time. Against a real SMTP server
(aiosmtpd) and a real HTTP receiver, on every store."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from faena.bootstrap import Runtime
from faena.bootstrap_mail import mail_kinds, remote_mail_kinds
from faena.domain.jobs import DEFAULT_TENANT, Job, JobState
from faena.domain.logs import LogStream
from faena.domain.signatures import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from faena.ports.store import ClaimParams
from faena.services.orchestrator import JobRequest
from tests.mail.conftest import RuntimeFactory, put_secret
from tests.mail.servers import HttpReceiver, SmtpServer, start_smtp

T = DEFAULT_TENANT
DELAY_S = 1.0  # the job is due then; the ghost worker claims it as of that time
GHOST_LEASE_S = 0.5


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = start_smtp()
    yield server
    server.controller.stop()


class Sink:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, stream: LogStream, data: str) -> None:
        self.lines.append(data)


async def _first_attempt_dies_after_sending(
    runtime: Runtime, kind: str, payload: dict[str, Any]
) -> tuple[Job, Any]:
    """Submit a job, let a "ghost" worker of this server (kinds of its own, as another process
    would have) claim it and run it — it sends — and then die without completing it. Returns
    the job as it finally ends (its lease expired, the local pool ran it again) and the ghost
    attempt's outcome."""
    [submitted] = await runtime.orchestrator.submit(
        T, [JobRequest(kind=kind, payload=payload, delay_s=DELAY_S, max_attempts=3)]
    )
    [claimed] = await runtime.store.claim(
        ClaimParams(
            worker_id="ghost",
            limit=1,
            lease_s=GHOST_LEASE_S,
            now=time.time() + DELAY_S,
            kinds=frozenset({kind}),
        )
    )
    assert claimed.id == submitted.job.id and claimed.attempts == 1
    ghost = mail_kinds(runtime.settings, runtime)[kind]
    try:
        first = await ghost.run(claimed, Sink())
    finally:
        await ghost.aclose()
    assert first.succeeded, first.error
    # The ghost dies here: it never completes the attempt, its lease expires.
    job = await runtime.orchestrator.wait(T, claimed.id, 20.0)
    return job, first


def _smtp_settings(smtp: SmtpServer) -> dict[str, Any]:
    return {
        "smtp_url": f"smtp://127.0.0.1:{smtp.port}?starttls=false",
        "smtp_from": "alerts@acme.example",
        "lease_s": 2.0,
        "notify_group_s": 0.0,
    }


async def test_email_send_is_not_sent_again_after_its_worker_died(
    database_url: str, make_runtime: RuntimeFactory, smtp: SmtpServer
) -> None:
    runtime = await make_runtime(database_url, **_smtp_settings(smtp))
    payload = {"to": ["finance@acme.example"], "subject": "Invoice 42", "text": "Total 1250"}

    job, first = await _first_attempt_dies_after_sending(runtime, "email.send", payload)

    assert job.state is JobState.SUCCEEDED, job.error
    assert job.attempts == 2  # the pool ran it again after the lease expired
    [msg] = smtp.wait_for(1)
    assert len(smtp.received) == 1  # and it did not send a second message
    assert job.result["already_sent"] is True and job.result["sent_by_attempt"] == 1
    assert job.result["message_id"] == first.result["message_id"] == msg["Message-ID"]
    assert job.result["accepted"] == ["finance@acme.example"]


async def test_the_message_id_is_derived_from_the_job_on_every_attempt(
    make_runtime: RuntimeFactory, smtp: SmtpServer
) -> None:
    """Without a store (a remote worker) every attempt sends, with the same Message-ID, so a
    receiver can drop the repeat; another job gets another one."""
    runtime = await make_runtime("memory://", **_smtp_settings(smtp))
    kind = remote_mail_kinds(runtime.settings)["email.send"]
    payload = {"to": "a@b.example", "subject": "Hi", "text": "x"}
    [one, other] = await runtime.orchestrator.submit(
        T, [JobRequest(kind="noop", payload=None), JobRequest(kind="noop", payload=None)]
    )
    job = replace(one.job, kind="email.send", payload=payload, attempts=1)
    again = replace(job, attempts=2)
    elsewhere = replace(other.job, kind="email.send", payload=payload, attempts=1)
    for attempt in (job, again, elsewhere):
        outcome = await kind.run(attempt, Sink())
        assert outcome.succeeded, outcome.error
    await kind.aclose()
    ids = [m["Message-ID"] for m in smtp.wait_for(3)]
    assert ids[0] == ids[1] != ids[2]
    assert re.fullmatch(rf"<{job.id}\.[0-9a-f]{{8}}@acme\.example>", ids[0])


@pytest.mark.parametrize("kind", ["notify.email", "notify.webhook", "notify.slack"])
async def test_a_notification_is_not_delivered_again_after_its_worker_died(
    make_runtime: RuntimeFactory,
    tmp_path: Any,
    smtp: SmtpServer,
    receiver: HttpReceiver,
    kind: str,
) -> None:
    runtime = await make_runtime(f"sqlite:///{tmp_path}/f.db", **_smtp_settings(smtp))
    payload: dict[str, Any] = {
        "notify.email": {"to": "boss@acme.example", "subject": "Big invoice", "text": "1250"},
        "notify.webhook": {"url": receiver.url(), "body": {"amount": 1250}},
        "notify.slack": {"url": receiver.url("/slack"), "text": "Big invoice: 1250"},
    }[kind]

    job, first = await _first_attempt_dies_after_sending(runtime, kind, payload)

    assert job.state is JobState.SUCCEEDED and job.attempts == 2, job.error
    assert job.result["already_sent"] is True
    if kind == "notify.email":
        smtp.wait_for(1)
        assert len(smtp.received) == 1
    else:
        assert len(receiver.requests) == 1
        assert job.result["status"] == first.result["status"] == 200


async def test_a_failed_delivery_is_not_recorded_and_the_retry_delivers(
    make_runtime: RuntimeFactory, tmp_path: Any, receiver: HttpReceiver
) -> None:
    runtime = await make_runtime(f"sqlite:///{tmp_path}/f.db")
    receiver.statuses = [503]
    [submitted] = await runtime.orchestrator.submit(
        T,
        [
            JobRequest(
                kind="notify.webhook",
                payload={"url": receiver.url(), "body": {}},
                max_attempts=3,
                backoff_s=0.05,
            )
        ],
    )
    job = await runtime.orchestrator.wait(T, submitted.job.id, 20.0)
    assert job.state is JobState.SUCCEEDED and job.attempts == 2
    assert len(receiver.requests) == 2 and "already_sent" not in job.result


async def test_a_webhook_without_a_secret_is_signed_with_the_tenant_default(
    database_url: str, make_runtime: RuntimeFactory, receiver: HttpReceiver
) -> None:
    runtime = await make_runtime(database_url)

    async def post() -> Job:
        [submitted] = await runtime.orchestrator.submit(
            T, [JobRequest(kind="notify.webhook", payload={"url": receiver.url(), "body": {}})]
        )
        return await runtime.orchestrator.wait(T, submitted.job.id, 20.0)

    unsigned = await post()
    assert unsigned.state is JobState.SUCCEEDED and unsigned.result["signed"] is False
    assert SIGNATURE_HEADER.lower() not in {k.lower() for k in receiver.requests[0].headers}

    await put_secret(runtime, "NOTIFY_WEBHOOK_SECRET", "tenant-default-secret")
    kind = runtime.executor._handlers["notify.webhook"]  # type: ignore[union-attr]
    kind.default_secret._known.clear()  # forget the "none" it saw a moment ago (5 s)
    signed = await post()
    assert signed.state is JobState.SUCCEEDED and signed.result["signed"] is True
    headers = {k.lower(): v for k, v in receiver.requests[1].headers.items()}
    reason = verify(
        "tenant-default-secret",
        headers[TIMESTAMP_HEADER.lower()],
        headers[SIGNATURE_HEADER.lower()],
        receiver.requests[1].body,
        time.time(),
    )
    assert reason is None


async def test_grouping_is_per_channel_for_slack_and_email(
    make_runtime: RuntimeFactory, smtp: SmtpServer, receiver: HttpReceiver
) -> None:
    """Notifications to two Slack channels and to two sets of recipients sent at once: one
    message per channel, never one across channels."""
    settings = {**_smtp_settings(smtp), "notify_group_s": 0.3}
    runtime = await make_runtime("memory://", **settings)
    requests = [
        JobRequest(kind="notify.slack", payload={"url": receiver.url("/a"), "text": f"a{n}"})
        for n in range(2)
    ] + [
        JobRequest(
            kind="notify.slack",
            payload={"url": receiver.url("/a"), "text": "b", "channel": "#other"},
        ),
        JobRequest(kind="notify.slack", payload={"url": receiver.url("/b"), "text": "c"}),
    ]
    requests += [
        JobRequest(
            kind="notify.email",
            payload={"to": to, "subject": f"s{n}", "text": "t"},
        )
        for n, to in enumerate(["x@acme.example", "x@acme.example", "y@acme.example"])
    ]
    submitted = await runtime.orchestrator.submit(T, requests)
    jobs = [await runtime.orchestrator.wait(T, s.job.id, 20.0) for s in submitted]
    assert [j.state for j in jobs] == [JobState.SUCCEEDED] * len(jobs), [j.error for j in jobs]
    slack = sorted(
        (r.path, r.json().get("channel", ""), r.json()["text"]) for r in receiver.requests
    )
    assert [(p, c) for p, c, _ in slack] == [("/a", ""), ("/a", "#other"), ("/b", "")]
    assert sorted(slack[0][2].splitlines()) == ["a0", "a1"]
    mails = smtp.wait_for(2)
    assert len(smtp.received) == 2
    subjects = sorted(str(m["Subject"]) for m in mails)
    assert subjects[0].startswith("2 notifications: s") and subjects[1] == "s2"
    assert [j.result.get("grouped") for j in jobs] == [2, 2, None, None, 2, 2, None]
