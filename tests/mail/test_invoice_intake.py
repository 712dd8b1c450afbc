"""The invoice-intake example end to end: invoices arrive in a real mailbox (Dovecot), their
PDFs are read (a text layer, and a scan through OCR), totals and due dates are extracted, and a
signed webhook and an email (SMTP, with the PDF) go out for those over the threshold."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from faena.domain.jobs import DEFAULT_TENANT
from faena.domain.runs import RunState
from faena.domain.signatures import verify
from faena.ports.workflows import ListRunsParams
from faena.worker.registry import default_registry
from tests.mail.conftest import RuntimeFactory, eventually, put_secret
from tests.mail.servers import PASSWORD, Dovecot, HttpReceiver, SmtpServer, start_smtp

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "invoice-intake"
T = DEFAULT_TENANT


@pytest.fixture
def example() -> Iterator[Any]:
    sys.path.insert(0, str(EXAMPLE))
    try:
        import invoice_tasks  # registers extract_invoice with @faena.task
        import seed_mailbox

        yield invoice_tasks, seed_mailbox
    finally:
        sys.path.remove(str(EXAMPLE))


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = start_smtp()
    yield server
    server.controller.stop()


def test_the_extraction_reads_common_invoice_layouts(example: Any) -> None:
    invoice_tasks, _ = example
    found = invoice_tasks.extract(
        "Invoice INV-7\nTotal due 1,234.56 EUR\nDue date: 2026-12-15\nThanks"
    )
    assert found == {"total": 1234.56, "currency": "EUR", "due_date": "2026-12-15",
                     "number": "INV-7"}  # fmt: skip
    other = invoice_tasks.extract("Amount due: € 1.234,56 payable by 30 November 2026")
    assert (other["total"], other["currency"], other["due_date"]) == (1234.56, "EUR", "2026-11-30")
    assert invoice_tasks.extract("hello")["total"] is None


async def test_invoice_intake_end_to_end(
    *,
    example: Any,
    make_runtime: RuntimeFactory,
    tmp_path: Path,
    dovecot: Dovecot,
    user: str,
    smtp: SmtpServer,
    receiver: HttpReceiver,
) -> None:
    _, seed = example
    runtime = await make_runtime(
        f"sqlite:///{tmp_path}/faena.db",
        tasks=default_registry,
        smtp_url=f"smtp://127.0.0.1:{smtp.port}",
        smtp_from="faena@example.org",
    )
    assert runtime.workflows is not None and runtime.mail is not None
    workflow = (EXAMPLE / "workflow.yaml").read_text()
    workflow = workflow.replace("http://127.0.0.1:9000/invoices", receiver.url("/invoices"))
    await runtime.workflows.apply_text(T, workflow)
    await put_secret(runtime, "IMAP_PASSWORD", PASSWORD)
    await put_secret(runtime, "FINANCE_WEBHOOK_SECRET", "whsec-finance")
    watch = yaml.safe_load((EXAMPLE / "watch.yaml").read_text())
    watch.update(name="invoices", port=dovecot.imap_port, username=user, poll_s=0.2)
    await runtime.mail.add(T, watch)

    dovecot.append(user, seed.invoice_message(number="INV-1", total="1,250.00", due="2026-12-15"))
    dovecot.append(user, seed.invoice_message(number="INV-2", total="480.00", due="2026-12-20"))
    dovecot.append(
        user, seed.invoice_message(number="INV-3", total="2,000.00", due="2027-01-10", scanned=True)
    )
    dovecot.append(user, seed.invoice_message(number="x").replace(b"Subject: Invoice x",
                                                                  b"Subject: Lunch?"))  # fmt: skip

    async def finished() -> list[Any] | None:
        page = await runtime.workflows.list_runs(  # type: ignore[union-attr]
            ListRunsParams(T, workflow="invoice-intake", limit=10)
        )
        done = [r for r in page.runs if r.state.is_terminal]
        return page.runs if len(done) == 3 else None

    runs = {r.steps[1].output["number"]: r for r in await eventually(finished, timeout=90)}
    assert {n: r.state for n, r in runs.items()} == {
        "INV-1": RunState.SUCCEEDED, "INV-2": RunState.SUCCEEDED, "INV-3": RunState.SUCCEEDED,
    }  # fmt: skip
    assert runs["INV-1"].steps[1].output == {
        "total": 1250.0, "currency": "EUR", "due_date": "2026-12-15", "number": "INV-1",
    }  # fmt: skip
    assert runs["INV-3"].steps[1].output["total"] == 2000.0  # read from the scan with OCR
    assert [s.state.value for s in runs["INV-2"].steps[2:]] == ["skipped", "skipped"]

    hooks = sorted((r.json() for r in receiver.requests), key=lambda b: b["invoice"])
    assert [(h["invoice"], h["total"], h["due_date"]) for h in hooks] == [
        ("INV-1", 1250.0, "2026-12-15"), ("INV-3", 2000.0, "2027-01-10"),
    ]  # fmt: skip
    for request in receiver.requests:
        headers = {k.lower(): v for k, v in request.headers.items()}
        assert verify(
            "whsec-finance", headers["x-faena-timestamp"], headers["x-faena-signature"],
            request.body, time.time(),
        ) is None  # fmt: skip

    mails = sorted(smtp.wait_for(2), key=lambda m: str(m["Subject"]))
    assert [m["Subject"] for m in mails] == [
        "Invoice INV-1: 1250.0 EUR",
        "Invoice INV-3: 2000.0 EUR",
    ]
    [pdf] = list(mails[0].iter_attachments())
    assert pdf.get_filename() == "INV-1.pdf" and pdf.get_content().startswith(b"%PDF")
    skipped = await runtime.mail.messages(T, "invoices", state="skipped")
    assert [m.subject for m in skipped] == ["Lunch?"]

    async def moved() -> bool:
        return len(dovecot.flags(user, "Processed")) == 4  # the skipped one too

    await eventually(moved)
    assert all("$FaenaDone" in f for f in dovecot.flags(user, "Processed").values())
