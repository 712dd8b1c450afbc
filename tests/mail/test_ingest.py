"""Mailbox watches against a real Dovecot, on every store: each message starts one run, is
flagged, and is never handled twice — across restarts and two servers racing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from faena.bootstrap import Runtime
from faena.domain.artefacts import blob_key
from faena.domain.jobs import DEFAULT_TENANT
from faena.domain.runs import Run, RunState
from faena.ports.workflows import ListRunsParams
from tests.mail.conftest import INTAKE, RuntimeFactory, eventually, put_secret
from tests.mail.servers import PASSWORD, Dovecot, message

T = DEFAULT_TENANT


async def _setup(runtime: Runtime, dovecot: Dovecot, user: str, **watch: Any) -> dict[str, Any]:
    assert runtime.workflows is not None and runtime.mail is not None
    await runtime.workflows.apply_text(T, INTAKE)
    await put_secret(runtime, "IMAP_PASSWORD", PASSWORD)
    spec = {
        "name": "invoices",
        "host": "127.0.0.1",
        "port": dovecot.imap_port,
        "security": "none",
        "username": user,
        "password_secret": "IMAP_PASSWORD",
        "workflow": "intake",
        "poll_s": 0.2,
        **watch,
    }
    created = await runtime.mail.add(T, spec)
    return created.to_dict()


async def _runs(runtime: Runtime) -> list[Run]:
    assert runtime.workflows is not None
    page = await runtime.workflows.list_runs(ListRunsParams(T, workflow="intake", limit=500))
    return page.runs


async def _finished(runtime: Runtime, count: int) -> list[Run]:
    async def check() -> list[Run] | None:
        runs = await _runs(runtime)
        done = [r for r in runs if r.state.is_terminal]
        return runs if len(done) >= count else None

    runs: list[Run] = await eventually(check)
    return runs


async def test_a_message_starts_one_run_with_the_message_and_is_flagged(
    database_url: str, make_runtime: RuntimeFactory, dovecot: Dovecot, user: str
) -> None:
    runtime = await make_runtime(database_url)
    await _setup(runtime, dovecot, user)
    uid = dovecot.append(user, message("Invoice 42", "Total due: 1,250.00 EUR"))

    [run] = await _finished(runtime, 1)
    assert run.state is RunState.SUCCEEDED
    assert run.trigger == "mail"
    assert run.idempotency_key is not None and run.idempotency_key.endswith(f":{uid}")
    output = run.steps[0].output
    assert output["subject"] == "Invoice 42"
    assert output["from"] == "billing@supplier.example"
    assert "1,250.00 EUR" in output["text"]

    async def flagged() -> bool:
        return {"\\Seen", "$FaenaDone"} <= dovecot.flags(user)[uid]

    await eventually(flagged)
    assert runtime.mail is not None
    [record] = await runtime.mail.messages(T, "invoices")
    assert (record.state, record.run_id, record.subject) == ("ingested", run.id, "Invoice 42")

    async def advanced() -> Any:
        assert runtime.mail is not None
        watch = await runtime.mail.get(T, "invoices")
        return watch if watch.last_uid == uid else None

    watch = await eventually(advanced)
    assert watch.processed == 1 and watch.last_error is None


async def test_html_is_read_as_text_and_attachments_become_artefacts(
    make_runtime: RuntimeFactory, dovecot: Dovecot, user: str, tmp_path: Any
) -> None:
    runtime = await make_runtime(f"sqlite:///{tmp_path}/f.db")
    await _setup(runtime, dovecot, user)
    pdf = b"%PDF-1.4 fake invoice bytes"
    raw = message(
        "Invoice with PDF",
        "",
        html="<html><head><style>p{}</style></head><body><p>Total: <b>900</b></p>"
        "<ul><li>one</li><li>two</li></ul><script>x()</script></body></html>",
        attachments=[("invoice.pdf", "application/pdf", pdf)],
    )
    # A message whose only text is HTML: drop the plain part.
    raw = raw.replace(b"Content-Type: text/plain", b"Content-Type: text/x-ignored", 1)
    dovecot.append(user, raw)

    [run] = await _finished(runtime, 1)
    output = run.steps[0].output
    [attachment] = output["attachments"]
    assert attachment["filename"] == "invoice.pdf"
    assert attachment["content_type"] == "application/pdf"
    assert runtime.artefacts is not None
    artefact, data = await runtime.artefacts.get(T, attachment["artefact_id"])
    assert data == pdf and artefact.name == "invoice.pdf"


async def test_a_malformed_message_is_parked_with_its_reason_and_the_watch_goes_on(
    database_url: str, make_runtime: RuntimeFactory, dovecot: Dovecot, user: str
) -> None:
    runtime = await make_runtime(database_url)
    await _setup(runtime, dovecot, user)
    bad = dovecot.append(user, b"this is not an email at all, no headers\r\n")
    broken = dovecot.append(
        user,
        b"From: a@b.example\r\nSubject: broken\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="zzz"\r\n\r\nno boundary ever\r\n',
    )
    good = dovecot.append(user, message("Fine", "ok"))

    [run] = await _finished(runtime, 1)
    assert run.steps[0].output["subject"] == "Fine"
    assert runtime.mail is not None
    parked = await runtime.mail.messages(T, "invoices", state="parked")
    reasons = {m.uid: m.reason for m in parked}
    assert set(reasons) == {bad, broken}
    assert "no headers" in (reasons[bad] or "")
    assert "MIME" in (reasons[broken] or "")

    async def flagged() -> bool:
        flags = dovecot.flags(user)
        return (
            "$FaenaParked" in flags[bad]
            and "$FaenaParked" in flags[broken]
            and "$FaenaDone" in flags[good]
        )

    await eventually(flagged)

    async def counted() -> Any:
        assert runtime.mail is not None
        watch = await runtime.mail.get(T, "invoices")
        return watch if watch.processed == 1 else None

    watch = await eventually(counted)
    assert (watch.processed, watch.parked, watch.last_error) == (1, 2, None)


async def test_rules_pick_the_workflow_and_unmatched_messages_are_skipped(
    make_runtime: RuntimeFactory, dovecot: Dovecot, user: str
) -> None:
    runtime = await make_runtime("memory://")
    await _setup(
        runtime,
        dovecot,
        user,
        workflow=None,
        rules=[
            {"match": {"from": "@supplier\\.example$", "subject": "invoice"}, "workflow": "intake"}
        ],
    )
    dovecot.append(user, message("Lunch on Friday?", "hi"))
    dovecot.append(user, message("INVOICE 7", "due"))
    [run] = await _finished(runtime, 1)
    assert run.steps[0].output["subject"] == "INVOICE 7"
    assert runtime.mail is not None
    skipped = await eventually(lambda: runtime.mail.messages(T, "invoices", state="skipped"))  # type: ignore[union-attr]
    assert [m.subject for m in skipped] == ["Lunch on Friday?"]


async def test_a_restart_handles_only_new_messages(
    shared_url: str, make_runtime: RuntimeFactory, dovecot: Dovecot, user: str
) -> None:
    first = await make_runtime(shared_url)
    await _setup(first, dovecot, user)
    for i in range(3):
        dovecot.append(user, message(f"before {i}"))
    await _finished(first, 3)
    await first.stop()

    second = await make_runtime(shared_url)
    dovecot.append(user, message("after restart"))
    runs = await _finished(second, 4)
    assert sorted(r.steps[0].output["subject"] for r in runs) == [
        "after restart", "before 0", "before 1", "before 2",
    ]  # fmt: skip
    assert len({r.idempotency_key for r in runs}) == 4


async def test_a_message_seen_again_after_a_crash_starts_no_second_run(
    database_url: str, make_runtime: RuntimeFactory, dovecot: Dovecot, user: str
) -> None:
    """A crash after the run started but before the message was flagged: the next pass reads
    the message again, and the run key and the message record make it a no-op."""
    runtime = await make_runtime(database_url)
    await _setup(runtime, dovecot, user)
    uid = dovecot.append(user, message("once"))
    await _finished(runtime, 1)
    assert runtime.mail is not None and runtime.mail.watcher is not None
    watch = await runtime.mail.get(T, "invoices")
    from faena.adapters.imap import ImapConnector

    session = await ImapConnector().connect(watch, PASSWORD)
    try:
        raws = await session.fetch_many([uid])
        handled = await runtime.mail.watcher.handle(watch, session.uidvalidity, uid, raws[uid])
    finally:
        await session.close()
    assert handled.state == "repeat"
    assert len(await _runs(runtime)) == 1


async def test_a_message_read_again_after_a_crash_keeps_the_artefacts_of_its_first_reading(
    database_url: str, make_runtime: RuntimeFactory, dovecot: Dovecot, user: str, tmp_path: Path
) -> None:
    """A crash after the attachments were stored but before the run started: the message is
    read again, and its attachments are not stored a second time (no orphan artefacts, no
    orphan bytes); the run refers to the artefacts of the first reading."""
    from faena.adapters.imap import ImapConnector
    from faena.services.mail import MailWatcher, NoSecrets

    runtime = await make_runtime(database_url, mail_watch=False, home=tmp_path)
    await _setup(runtime, dovecot, user)
    pdfs = [("a.pdf", "application/pdf", b"%PDF-a"), ("b.pdf", "application/pdf", b"%PDF-b")]
    uid = dovecot.append(user, message("Two PDFs", "see attached", attachments=pdfs))
    assert runtime.mail is not None and runtime.workflows is not None
    watch = await runtime.mail.get(T, "invoices")

    class Crash(Exception):
        pass

    class DiesBeforeTheRun:
        async def start(self, *args: Any, **kwargs: Any) -> Any:
            raise Crash

    def watcher(workflows: Any) -> MailWatcher:
        return MailWatcher(
            runtime.store,  # type: ignore[arg-type]
            workflows,
            runtime.workflows.clock,  # type: ignore[union-attr]
            connector=ImapConnector(),
            secrets=NoSecrets(),
            attachments=runtime.artefacts,
        )

    session = await ImapConnector().connect(watch, PASSWORD)
    try:
        raw = (await session.fetch_many([uid]))[uid]
        with pytest.raises(Crash):
            await watcher(DiesBeforeTheRun()).handle(watch, session.uidvalidity, uid, raw)
        handled = await watcher(runtime.workflows).handle(watch, session.uidvalidity, uid, raw)
    finally:
        await session.close()
    assert handled.state == "ingested" and handled.run_id is not None
    assert runtime.artefacts is not None
    stored = (await runtime.artefacts.list(T)).artefacts
    assert sorted(a.name for a in stored) == ["a.pdf", "b.pdf"]
    run = await runtime.workflows.get_run(T, handled.run_id)
    given = [a["artefact_id"] for a in run.inputs["message"]["attachments"]]
    assert sorted(given) == sorted(a.id for a in stored)
    root = tmp_path / "artefacts"
    blobs = sorted(str(f.relative_to(root)) for f in _files(root))
    assert blobs == sorted(blob_key(T, a.id) for a in stored)


def _files(root: Path) -> list[Path]:
    return [f for f in root.rglob("*") if f.is_file() and not f.name.startswith(".")]


async def test_two_servers_racing_handle_each_message_once(
    shared_url: str, make_runtime: RuntimeFactory, dovecot: Dovecot, user: str
) -> None:
    one = await make_runtime(shared_url)
    two = await make_runtime(shared_url)
    await _setup(one, dovecot, user)
    dovecot.append_many(user, [message(f"m{i}") for i in range(30)])
    runs = await _finished(one, 30)
    assert len(runs) == 30
    assert sorted(int(r.steps[0].output["subject"][1:]) for r in runs) == list(range(30))
    assert one.mail is not None and two.mail is not None
    assert one.mail.watcher is not None and two.mail.watcher is not None
    leaders = len(one.mail.watcher.running) + len(two.mail.watcher.running)
    assert leaders == 1
    records = await one.mail.messages(T, "invoices", limit=1000)
    assert len(records) == 30 and {r.state for r in records} == {"ingested"}


async def test_imaps_and_starttls_with_a_verified_certificate(
    make_runtime: RuntimeFactory, dovecot: Dovecot, user: str
) -> None:
    runtime = await make_runtime("memory://")
    await _setup(
        runtime,
        dovecot,
        user,
        security="ssl",
        port=dovecot.imaps_port,
        ca_file=str(dovecot.cert),
    )
    assert runtime.mail is not None
    await runtime.mail.add(
        T,
        {
            "name": "via-starttls",
            "host": "127.0.0.1",
            "port": dovecot.imap_port,
            "security": "starttls",
            "username": user,
            "password_secret": "IMAP_PASSWORD",
            "workflow": "intake",
            "folder": "Other",
            "ca_file": str(dovecot.cert),
        },
    )
    dovecot.append(user, message("over imaps"))
    dovecot.append(user, message("over starttls"), folder="Other")
    runs = await _finished(runtime, 2)
    assert sorted(r.steps[0].output["subject"] for r in runs) == ["over imaps", "over starttls"]


async def test_an_unreachable_server_or_a_wrong_password_is_recorded_and_retried(
    make_runtime: RuntimeFactory, dovecot: Dovecot, user: str
) -> None:
    from tests.mail.servers import free_port

    runtime = await make_runtime("memory://")
    await _setup(runtime, dovecot, user, port=free_port())
    await runtime.secrets.put(T, "WRONG", "not-the-password")  # type: ignore[union-attr]
    assert runtime.mail is not None
    await runtime.mail.add(
        T,
        {
            "name": "wrong-password",
            "host": "127.0.0.1",
            "port": dovecot.imap_port,
            "security": "none",
            "username": user,
            "password_secret": "WRONG",
            "workflow": "intake",
        },
    )

    async def errors() -> dict[str, str] | None:
        assert runtime.mail is not None
        found = {w.name: w.last_error for w in await runtime.mail.list_watches(T)}
        return found if all(found.values()) else None  # type: ignore[return-value]

    found = await eventually(errors)
    assert "unreachable" in found["invoices"]
    assert "login" in found["wrong-password"] and "refused" in found["wrong-password"]
    assert runtime.mail.watcher is not None
    assert len(runtime.mail.watcher.running) == 2  # both keep running (and retrying)


async def test_idle_sees_new_mail_long_before_the_next_poll(
    make_runtime: RuntimeFactory, dovecot: Dovecot, user: str
) -> None:
    runtime = await make_runtime("memory://")
    await _setup(runtime, dovecot, user, poll_s=600)
    assert runtime.mail is not None

    async def connected() -> Any:
        assert runtime.mail is not None
        return (await runtime.mail.get(T, "invoices")).last_polled_at

    await eventually(connected)
    dovecot.append(user, message("pushed by IDLE"))
    [run] = await _finished(runtime, 1)  # within eventually's 20 s, not the 600 s poll
    assert run.steps[0].output["subject"] == "pushed by IDLE"


async def test_without_idle_the_watch_polls(
    make_runtime: RuntimeFactory, dovecot: Dovecot, user: str
) -> None:
    runtime = await make_runtime("memory://")
    await _setup(runtime, dovecot, user, idle=False, poll_s=0.3)
    dovecot.append(user, message("found by polling"))
    [run] = await _finished(runtime, 1)
    assert run.steps[0].output["subject"] == "found by polling"
