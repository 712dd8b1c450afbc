"""Classifying messages with the tenant's LLM when a watch's rules do not decide, against a real
Dovecot and the local fake OpenAI-compatible provider of the AI tests: the label picks the
workflow, what decided is recorded on the message row and given to the run, a refusal falls
back to the default, and a message read again after a crash gets its recorded answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from faena.bootstrap import Runtime
from faena.domain.errors import ValidationError
from faena.domain.jobs import DEFAULT_TENANT
from faena.domain.llm import ModelPrice, ProviderConfig
from faena.domain.mail import MailMessageRecord
from faena.domain.runs import Run
from faena.ports.workflows import ListRunsParams
from tests.ai.providers import FakeProvider, Reply
from tests.mail.conftest import INTAKE, RuntimeFactory, eventually, put_secret
from tests.mail.servers import PASSWORD, Dovecot, message

T = DEFAULT_TENANT
COMPLAINTS = INTAKE.replace("name: intake", "name: complaints")
CLASSIFY = {
    "llm": {
        "model": "fake/small",
        "labels": {"invoice": "intake", "complaint": "complaints"},
        "instructions": "invoice: bills and payment requests; complaint: unhappy customers",
    }
}


def _label(body: dict[str, Any]) -> str:
    """The fake model: reads the email in the user turn and answers with a label."""
    email = body["messages"][-1]["content"].lower()
    label = "complaint" if "refund" in email else "invoice" if "invoice" in email else "none"
    return orjson.dumps({"label": label}).decode()


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    server = await FakeProvider().start()
    server.default = Reply(_label)
    try:
        yield server
    finally:
        await server.stop()


async def _setup(
    runtime: Runtime, dovecot: Dovecot, user: str, fake: FakeProvider | None, **watch: Any
) -> None:
    assert runtime.workflows is not None and runtime.mail is not None
    await runtime.workflows.apply_text(T, INTAKE)
    await runtime.workflows.apply_text(T, COMPLAINTS)
    await put_secret(runtime, "IMAP_PASSWORD", PASSWORD)
    if fake is not None:
        await runtime.store.put_llm_provider(  # type: ignore[attr-defined]
            ProviderConfig(T, "fake", "openai", fake.openai_url, None, {"small": ModelPrice(1, 2)})
        )
    spec = {
        "name": "inbox",
        "host": "127.0.0.1",
        "port": dovecot.imap_port,
        "security": "none",
        "username": user,
        "password_secret": "IMAP_PASSWORD",
        "poll_s": 0.2,
        "classify": CLASSIFY,
        **watch,
    }
    await runtime.mail.add(T, spec)


async def _records(runtime: Runtime, count: int) -> dict[str, MailMessageRecord]:
    async def check() -> dict[str, MailMessageRecord] | None:
        assert runtime.mail is not None
        found = await runtime.mail.messages(T, "inbox")
        return {str(r.subject): r for r in found} if len(found) >= count else None

    records: dict[str, MailMessageRecord] = await eventually(check)
    return records


async def _runs(runtime: Runtime) -> dict[str, Run]:
    assert runtime.workflows is not None
    page = await runtime.workflows.list_runs(ListRunsParams(T, limit=100))
    return {r.inputs["message"]["subject"]: r for r in page.runs}


async def test_the_llm_picks_the_workflow_when_no_rule_matches(
    database_url: str, make_runtime: RuntimeFactory, dovecot: Dovecot, user: str, fake: FakeProvider
) -> None:
    runtime = await make_runtime(database_url)
    await _setup(
        runtime,
        dovecot,
        user,
        fake,
        rules=[{"match": {"subject": "^URGENT"}, "workflow": "intake"}],
    )
    dovecot.append(user, message("URGENT: pay today", "see the refund policy"))
    dovecot.append(user, message("Invoice 42", "Total due: 1,250.00 EUR"))
    dovecot.append(user, message("Broken delivery", "I want a refund for order 7"))
    dovecot.append(user, message("Lunch on Friday?", "shall we?"))

    records = await _records(runtime, 4)
    assert records["URGENT: pay today"].classification == {
        "by": "rule",
        "rule": 0,
        "workflow": "intake",
    }
    llm = {s: r.classification for s, r in records.items() if s != "URGENT: pay today"}
    assert {s: (c or {}).get("by") for s, c in llm.items()} == dict.fromkeys(llm, "llm")
    assert {s: (c or {}).get("label") for s, c in llm.items()} == {
        "Invoice 42": "invoice",
        "Broken delivery": "complaint",
        "Lunch on Friday?": "none",
    }
    assert records["Broken delivery"].classification["workflow"] == "complaints"  # type: ignore[index]
    assert records["Lunch on Friday?"].state == "skipped"  # no label, and no default workflow
    assert fake.calls == 3  # the rule decided the first without asking

    runs = await _runs(runtime)
    assert {s: r.workflow for s, r in runs.items()} == {
        "URGENT: pay today": "intake",
        "Invoice 42": "intake",
        "Broken delivery": "complaints",
    }
    given = runs["Broken delivery"].inputs["message"]["classification"]
    assert given["label"] == "complaint" and given["model"] == "small"
    system = " ".join(m["content"] for m in fake.requests[0]["messages"] if m["role"] == "system")
    assert "invoice, complaint, none" in system and "unhappy customers" in system


async def test_a_refusal_falls_back_to_the_default_workflow(
    make_runtime: RuntimeFactory, dovecot: Dovecot, user: str, tmp_path: Any
) -> None:
    """No LLM provider is configured for the tenant: the message starts the default workflow,
    and the record says why the LLM did not decide."""
    runtime = await make_runtime(f"sqlite:///{tmp_path}/f.db")
    await _setup(runtime, dovecot, user, None, workflow="intake")
    dovecot.append(user, message("I want a refund", "now"))
    [record] = (await _records(runtime, 1)).values()
    assert record.state == "ingested"
    assert record.classification is not None
    assert record.classification["by"] == "default"
    assert record.classification["workflow"] == "intake"
    assert "no LLM provider" in record.classification["llm_error"]


async def test_a_message_read_again_after_a_crash_gets_the_recorded_answer(
    database_url: str, make_runtime: RuntimeFactory, dovecot: Dovecot, user: str, fake: FakeProvider
) -> None:
    """Classified, then the server died before the run started: reading the message again
    replays the recorded LLM answer (same label, not paid twice)."""
    from faena.adapters.imap import ImapConnector
    from faena.services.mail import MailWatcher, NoSecrets

    runtime = await make_runtime(database_url, mail_watch=False)
    await _setup(runtime, dovecot, user, fake)
    uid = dovecot.append(user, message("Invoice 9", "please pay"))
    assert runtime.mail is not None and runtime.workflows is not None
    watch = await runtime.mail.get(T, "inbox")
    real = runtime.mail  # only for its router's wiring: same as the server's watcher's

    class Crash(Exception):
        pass

    class DiesBeforeTheRun:
        async def start(self, *args: Any, **kwargs: Any) -> Any:
            raise Crash

    from faena.services.mail_routing import MessageRouter

    def watcher(workflows: Any) -> MailWatcher:
        return MailWatcher(
            runtime.store,  # type: ignore[arg-type]
            workflows,
            runtime.workflows.clock,  # type: ignore[union-attr]
            connector=ImapConnector(),
            secrets=NoSecrets(),
            attachments=runtime.artefacts,
            router=MessageRouter(lambda: runtime.llm),
        )

    session = await ImapConnector().connect(watch, PASSWORD)
    try:
        raw = (await session.fetch_many([uid]))[uid]
        with pytest.raises(Crash):
            await watcher(DiesBeforeTheRun()).handle(watch, session.uidvalidity, uid, raw)
        handled = await watcher(runtime.workflows).handle(watch, session.uidvalidity, uid, raw)
    finally:
        await session.close()
    assert handled.state == "ingested" and fake.calls == 1
    [record] = await real.messages(T, "inbox")
    assert record.classification is not None
    assert record.classification["label"] == "invoice"
    assert record.classification["replayed"] is True


@pytest.mark.parametrize(
    ("classify", "message_part"),
    [
        ({"llm": {"labels": {}}}, "labels must map 1 to"),
        ({"llm": {"labels": {"Bad Label": "intake"}}}, "lower-case"),
        ({"llm": {"labels": {"none": "intake"}}}, "not 'none'"),
        ({"llm": {"labels": {"a": "intake"}, "model": "x", "policy": "y"}}, "not both"),
        ({"llm": {"labels": {"a": "intake"}, "temperature": 1}}, "unknown field"),
        ({"llm": {"labels": {"a": "nowhere"}}}, "no workflow 'nowhere'"),
        ({"rules": []}, "must be {llm:"),
    ],
)
async def test_a_bad_classifier_is_refused_naming_the_field(
    make_runtime: RuntimeFactory,
    dovecot: Dovecot,
    user: str,
    classify: dict[str, Any],
    message_part: str,
) -> None:
    runtime = await make_runtime("memory://")
    with pytest.raises(ValidationError, match=message_part.replace("{", r"\{")):
        await _setup(runtime, dovecot, user, None, classify=classify)
