"""``email.send`` against a real SMTP server (aiosmtpd) that receives and checks the message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faena.bootstrap import Runtime
from faena.domain.errors import ValidationError
from faena.domain.jobs import DEFAULT_TENANT, Job, JobState
from faena.services.orchestrator import JobRequest
from tests.mail.conftest import RuntimeFactory
from tests.mail.servers import SmtpServer, free_port, make_cert, start_smtp

T = DEFAULT_TENANT


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    return make_cert(tmp_path)


@pytest.fixture
def secure_smtp(cert: tuple[Path, Path]) -> Iterator[SmtpServer]:
    """Requires STARTTLS, then AUTH as mailer / s3cret."""
    server = start_smtp(tls=cert, auth=("mailer", "s3cret"))
    yield server
    server.controller.stop()


@pytest.fixture
def plain_smtp() -> Iterator[SmtpServer]:
    server = start_smtp()
    yield server
    server.controller.stop()


async def _run(runtime: Runtime, kind: str, payload: Any, **options: Any) -> Job:
    [submitted] = await runtime.orchestrator.submit(
        T, [JobRequest(kind=kind, payload=payload, **options)]
    )
    return await runtime.orchestrator.wait(T, submitted.job.id, 20.0)


async def test_email_send_uses_starttls_and_auth_and_attaches_an_artefact(
    make_runtime: RuntimeFactory, secure_smtp: SmtpServer, cert: tuple[Path, Path]
) -> None:
    runtime = await make_runtime("memory://")
    assert runtime.artefacts is not None
    pdf = b"%PDF-1.4 the invoice"
    artefact = await runtime.artefacts.put(T, "invoice.pdf", "application/pdf", pdf)
    job = await _run(
        runtime,
        "email.send",
        {
            "to": ["finance@acme.example"],
            "cc": "boss@acme.example",
            "from": "faena@acme.example",
            "subject": "Invoice {{ number }} over {{ data.limit }}",
            "text": "Total {{ total }} EUR",
            "html": "<p>Total <b>{{ total }}</b> from {{ supplier }}</p>",
            "data": {"number": 42, "limit": 1000, "total": "1250.00", "supplier": "<Acme & Co>"},
            "attachments": [{"artefact": artefact.id}],
            "smtp": {
                "host": "127.0.0.1",
                "port": secure_smtp.port,
                "username": "mailer",
                "password": "s3cret",
                "starttls": True,
                "ca_file": str(cert[0]),
            },
        },
    )
    assert job.state is JobState.SUCCEEDED, job.error
    assert job.result["accepted"] == ["finance@acme.example", "boss@acme.example"]
    [msg] = secure_smtp.wait_for(1)
    assert msg["Subject"] == "Invoice 42 over 1000"
    assert msg["From"] == "faena@acme.example"
    assert msg.get_body(("plain",)).get_content().strip() == "Total 1250.00 EUR"  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "&lt;Acme &amp; Co&gt;" in html  # autoescaped
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == "invoice.pdf"
    assert attachment.get_content() == pdf
    [envelope] = secure_smtp.received
    assert sorted(envelope.rcpt_tos) == ["boss@acme.example", "finance@acme.example"]


async def test_a_refused_login_fails_the_job_without_retrying(
    make_runtime: RuntimeFactory, secure_smtp: SmtpServer, cert: tuple[Path, Path]
) -> None:
    runtime = await make_runtime("memory://")
    job = await _run(
        runtime,
        "email.send",
        {
            "to": "a@b.example",
            "from": "faena@acme.example",
            "subject": "x",
            "text": "y",
            "smtp": {
                "host": "127.0.0.1",
                "port": secure_smtp.port,
                "username": "mailer",
                "password": "wrong",
                "starttls": True,
                "ca_file": str(cert[0]),
            },
        },
        max_attempts=3,
        backoff_s=0.05,
    )
    assert job.state is JobState.FAILED and job.attempts == 1
    assert "SMTP login refused" in (job.error or "")
    assert secure_smtp.received == []


async def test_an_unreachable_server_fails_the_attempt_and_is_retried(
    make_runtime: RuntimeFactory,
) -> None:
    runtime = await make_runtime("memory://")
    job = await _run(
        runtime,
        "email.send",
        {
            "to": "a@b.example",
            "from": "f@acme.example",
            "subject": "x",
            "text": "y",
            "smtp": {"host": "127.0.0.1", "port": free_port(), "starttls": False},
        },
        max_attempts=2,
        backoff_s=0.05,
    )
    assert job.state is JobState.FAILED and job.attempts == 2
    assert "unreachable" in (job.error or "")


async def test_the_server_default_smtp_url_and_sender_are_used(
    make_runtime: RuntimeFactory, plain_smtp: SmtpServer
) -> None:
    runtime = await make_runtime(
        "memory://",
        smtp_url=f"smtp://127.0.0.1:{plain_smtp.port}?starttls=false",
        smtp_from="robot@acme.example",
    )
    job = await _run(runtime, "email.send", {"to": "a@b.example", "subject": "Hi", "text": "x"})
    assert job.state is JobState.SUCCEEDED, job.error
    [msg] = plain_smtp.wait_for(1)
    assert msg["From"] == "robot@acme.example"


async def test_a_template_escaping_the_sandbox_fails_for_good(
    make_runtime: RuntimeFactory, plain_smtp: SmtpServer
) -> None:
    runtime = await make_runtime("memory://")
    job = await _run(
        runtime,
        "email.send",
        {
            "to": "a@b.example",
            "from": "f@acme.example",
            "subject": "x",
            "text": "{{ data.__class__.__mro__ }}",
            "data": {"x": 1},
            "smtp": {"host": "127.0.0.1", "port": plain_smtp.port},
        },
        max_attempts=3,
    )
    assert job.state is JobState.FAILED and job.attempts == 1
    assert "template failed" in (job.error or "")
    assert plain_smtp.received == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"subject": "x", "text": "y"}, "'to' is required"),
        ({"to": "not-an-address", "subject": "x", "text": "y"}, "invalid address"),
        ({"to": "a@b.example", "subject": "x"}, "give 'text', 'html' or both"),
        ({"to": "a@b.example", "subject": "{{ x", "text": "y", "data": {"x": 1}}, "not a valid"),
        ({"to": "a@b.example", "subject": "x", "text": "y", "smtp": {"port": "25"}}, "smtp.port"),
        ({"to": "a@b.example", "subject": "x", "text": "y", "bogus": 1}, "unknown field"),
        ({"to": "a@b.example", "subject": "x", "text": "y", "attachments": [{}]}, "artefact"),
    ],
)
async def test_a_bad_payload_is_refused_at_submit(
    make_runtime: RuntimeFactory, payload: dict[str, Any], message: str
) -> None:
    runtime = await make_runtime("memory://")
    with pytest.raises(ValidationError, match=message):
        await runtime.orchestrator.submit(T, [JobRequest(kind="email.send", payload=payload)])
