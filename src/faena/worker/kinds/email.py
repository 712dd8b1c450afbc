"""The ``email.send`` kind: one message over SMTP (STARTTLS or implicit TLS, with AUTH),
its subject and bodies rendered by a sandboxed Jinja2 from ``data``, attachments read from
artefacts.

SMTP settings come from the payload's ``smtp`` object (its password normally
``{{ secrets.NAME }}``, resolved before the job reaches its worker) or, field by field, from
the server's default (``FAENA_SMTP_URL`` + ``FAENA_SMTP_PASSWORD``). A refused login, refused
recipients or a 5xx reply fail the job for good; an unreachable server, a timeout or a 4xx
reply fail the attempt, which the job's retry policy repeats with exponential backoff.
"""

from __future__ import annotations

import ssl as tls
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
from jinja2 import StrictUndefined
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from faena.domain.errors import FaenaError, ValidationError
from faena.domain.jobs import Job
from faena.domain.logs import LogStream
from faena.ports.executor import ExecutionSink
from faena.worker.kinds.sends import Sends, batch_of, message_id
from faena.worker.outcome import Outcome, describe, failed

MAX_RENDERED = 1_000_000
MAX_RECIPIENTS = 100
MAX_ATTACHMENTS = 20
SMTP_FIELDS = (
    "host",
    "port",
    "username",
    "password",
    "starttls",
    "ssl",
    "timeout_s",
    "tls_verify",
    "ca_file",
)
EMAIL_FIELDS = (
    "to",
    "cc",
    "bcc",
    "from",
    "reply_to",
    "subject",
    "text",
    "html",
    "data",
    "attachments",
    "smtp",
    "headers",
)


class ArtefactReader(Protocol):
    """Reads an artefact's bytes for a tenant (the ArtefactService)."""

    async def get(self, tenant: str, artefact_id: str) -> tuple[Any, bytes]: ...


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = None
    starttls: bool | None = None  # None: port 587 → True, otherwise False
    ssl: bool = False
    timeout_s: float = 30.0
    tls_verify: bool = True
    ca_file: str | None = None
    sender: str | None = None  # the default From

    def over(self, default: SmtpConfig) -> SmtpConfig:
        """These settings, with the unset ones taken from ``default``."""
        values = {}
        for name in ("host", "port", "username", "password", "starttls", "ca_file", "sender"):
            values[name] = (
                getattr(self, name) if getattr(self, name) is not None else getattr(default, name)
            )
        return replace(self, **values)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.effective_port}"

    @property
    def effective_port(self) -> int:
        return self.port or (465 if self.ssl else 587)

    def tls_context(self) -> tls.SSLContext:
        context = tls.create_default_context(cafile=self.ca_file)
        if not self.tls_verify:
            context.check_hostname = False
            context.verify_mode = tls.CERT_NONE
        return context


def parse_smtp_url(url: str, password: str | None = None, sender: str | None = None) -> SmtpConfig:
    """``smtp://user@host:587?starttls=true`` or ``smtps://user@host:465`` (server default)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValidationError("FAENA_SMTP_URL must read smtp://[user@]host[:port][?starttls=true]")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    starttls = query.get("starttls")
    return SmtpConfig(
        host=parts.hostname,
        port=parts.port,
        username=unquote(parts.username) if parts.username else None,
        password=password or (unquote(parts.password) if parts.password else None),
        starttls=None if starttls is None else starttls.lower() in ("1", "true", "yes"),
        ssl=parts.scheme == "smtps",
        tls_verify=query.get("tls_verify", "true").lower() not in ("0", "false", "no"),
        ca_file=query.get("ca_file"),
        sender=sender,
    )


def parse_smtp(value: Any, where: str) -> SmtpConfig:
    if value is None:
        return SmtpConfig()
    if not isinstance(value, dict):
        raise ValidationError(f"{where}: 'smtp' must be an object with {', '.join(SMTP_FIELDS)}")
    unknown = sorted(set(value) - set(SMTP_FIELDS))
    if unknown:
        raise ValidationError(f"{where}: unknown smtp field {unknown[0]!r}")
    for name in ("host", "username", "password", "ca_file"):
        if name in value and not isinstance(value[name], str):
            raise ValidationError(f"{where}: smtp.{name} must be a string")
    port = value.get("port")
    if port is not None and (
        isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536
    ):
        raise ValidationError(f"{where}: smtp.port must be between 1 and 65535")
    for name in ("starttls", "ssl", "tls_verify"):
        if name in value and not isinstance(value[name], bool):
            raise ValidationError(f"{where}: smtp.{name} must be true or false")
    timeout = value.get("timeout_s", 30.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 600:
        raise ValidationError(f"{where}: smtp.timeout_s must be between 0 and 600 seconds")
    if value.get("ssl") and value.get("starttls"):
        raise ValidationError(f"{where}: smtp.ssl and smtp.starttls exclude each other")
    return SmtpConfig(
        host=value.get("host"),
        port=port,
        username=value.get("username"),
        password=value.get("password"),
        starttls=value.get("starttls"),
        ssl=value.get("ssl", False),
        timeout_s=float(timeout),
        tls_verify=value.get("tls_verify", True),
        ca_file=value.get("ca_file"),
    )


# -- templates --------------------------------------------------------------------------------


class _Env(ImmutableSandboxedEnvironment):
    def __init__(self, *, html: bool) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=html, keep_trailing_newline=True)


_TEXT = _Env(html=False)
_HTML = _Env(html=True)


def check_template(source: str, where: str) -> None:
    try:
        _TEXT.parse(source)
    except JinjaTemplateError as e:
        raise ValidationError(f"{where} is not a valid template: {e}") from None


def render(source: str, data: Mapping[str, Any], *, html: bool = False) -> str:
    """ValidationError when the template fails (an undefined name, a sandbox refusal).

    Without ``data`` the text is used as it is: a workflow step's ``with`` is rendered by the
    engine already, and text it put there (a message's subject, say) is not a template."""
    if not data or "{" not in source:
        return source
    try:
        text = (_HTML if html else _TEXT).from_string(source).render(data=data, **data)
    except JinjaTemplateError as e:
        raise ValidationError(f"template failed: {type(e).__name__}: {e}") from None
    if len(text) > MAX_RENDERED:
        raise ValidationError(f"a rendered template is over {MAX_RENDERED} characters")
    return text


# -- the payload ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    artefact_id: str
    filename: str | None = None


@dataclass(frozen=True, slots=True)
class EmailSpec:
    to: tuple[str, ...]
    subject: str
    text: str | None = None
    html: str | None = None
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    sender: str | None = None
    reply_to: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    attachments: tuple[AttachmentRef, ...] = ()
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def recipients(self) -> list[str]:
        return [*self.to, *self.cc, *self.bcc]


def parse_addresses(
    value: Any, name: str, where: str, *, required: bool = False
) -> tuple[str, ...]:
    if value is None:
        if required:
            raise ValidationError(f"{where}: {name!r} is required")
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(a, str) for a in items):
        raise ValidationError(f"{where}: {name!r} must be an address or a list of addresses")
    for address in items:
        if "@" not in address or any(c in address for c in "\r\n") or len(address) > 320:
            raise ValidationError(f"{where}: {name!r} has an invalid address {address!r}")
    if required and not items:
        raise ValidationError(f"{where}: {name!r} must name at least one address")
    return tuple(items)


def _attachments(value: Any, where: str) -> tuple[AttachmentRef, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_ATTACHMENTS:
        raise ValidationError(
            f"{where}: 'attachments' must be a list of at most "
            f"{MAX_ATTACHMENTS} artefact references"
        )
    refs = []
    for i, given in enumerate(value):
        item = {"artefact_id": given} if isinstance(given, str) else given
        if not isinstance(item, dict):
            raise ValidationError(f"{where}: attachments[{i}] must be {{'artefact': id}}")
        ref = item.get("artefact", item.get("artefact_id"))
        if not isinstance(ref, str) or not ref:
            raise ValidationError(f"{where}: attachments[{i}] needs 'artefact' (an artefact id)")
        filename = item.get("filename")
        if filename is not None and (not isinstance(filename, str) or "/" in filename):
            raise ValidationError(f"{where}: attachments[{i}].filename must be a file name")
        refs.append(AttachmentRef(ref, filename))
    return tuple(refs)


def _string(value: Any, name: str, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{where}: {name!r} must be a string")
    return value


def parse_email(payload: Any, where: str = "email.send payload") -> EmailSpec:
    if not isinstance(payload, dict):
        raise ValidationError(f"{where} must be an object with 'to', 'subject' and 'text'/'html'")
    unknown = sorted(set(payload) - set(EMAIL_FIELDS))
    if unknown:
        raise ValidationError(
            f"{where}: unknown field {unknown[0]!r}; expected {', '.join(EMAIL_FIELDS)}"
        )
    to = parse_addresses(payload.get("to"), "to", where, required=True)
    cc = parse_addresses(payload.get("cc"), "cc", where)
    bcc = parse_addresses(payload.get("bcc"), "bcc", where)
    if len(to) + len(cc) + len(bcc) > MAX_RECIPIENTS:
        raise ValidationError(f"{where}: at most {MAX_RECIPIENTS} recipients")
    subject = _string(payload.get("subject"), "subject", where)
    if subject is None:
        raise ValidationError(f"{where}: 'subject' is required")
    text = _string(payload.get("text"), "text", where)
    html = _string(payload.get("html"), "html", where)
    if text is None and html is None:
        raise ValidationError(f"{where}: give 'text', 'html' or both")
    data = payload.get("data", {})
    if not isinstance(data, dict):
        raise ValidationError(f"{where}: 'data' must be an object (the templates' variables)")
    for name, source in (("subject", subject), ("text", text), ("html", html)):
        if source is not None and data:
            check_template(source, f"{where}: {name!r}")
    headers = payload.get("headers", {})
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and "\n" not in v and "\r" not in v
        for k, v in headers.items()
    ):
        raise ValidationError(f"{where}: 'headers' must map names to one-line strings")
    sender = parse_addresses(payload.get("from"), "from", where)
    reply_to = parse_addresses(payload.get("reply_to"), "reply_to", where)
    return EmailSpec(
        to=to,
        cc=cc,
        bcc=bcc,
        subject=subject,
        text=text,
        html=html,
        sender=sender[0] if sender else None,
        reply_to=reply_to[0] if reply_to else None,
        data=data,
        attachments=_attachments(payload.get("attachments"), where),
        smtp=parse_smtp(payload.get("smtp"), where),
        headers=headers,
    )


# -- sending ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Built:
    message: EmailMessage
    recipients: list[str]
    smtp: SmtpConfig


class Mailer:
    """Builds and sends messages; shared by ``email.send`` and ``notify.email``."""

    def __init__(self, default: SmtpConfig, artefacts: ArtefactReader | None) -> None:
        self.default = default
        self.artefacts = artefacts

    async def build(
        self,
        spec: EmailSpec,
        tenant: str,
        *,
        message_id_for: Callable[[str], str] | None = None,
    ) -> Built:
        """The message; ``message_id_for`` maps the sender's domain to its Message-ID (derived
        from the job, so every attempt sends the same one); without it, a random one."""
        smtp = spec.smtp.over(self.default)
        if smtp.host is None:
            raise ValidationError(
                "no SMTP server: give 'smtp.host' in the payload or set FAENA_SMTP_URL"
            )
        sender = (
            spec.sender or smtp.sender or (smtp.username if "@" in (smtp.username or "") else None)
        )
        if sender is None:
            raise ValidationError("no sender: give 'from' or set FAENA_SMTP_FROM")
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = ", ".join(spec.to)
        if spec.cc:
            msg["Cc"] = ", ".join(spec.cc)
        if spec.reply_to:
            msg["Reply-To"] = spec.reply_to
        msg["Subject"] = " ".join(render(spec.subject, spec.data).split())
        msg["Date"] = formatdate(localtime=False)
        domain = sender.rpartition("@")[2]
        msg["Message-ID"] = (
            message_id_for(domain) if message_id_for else make_msgid(domain=domain or None)
        )
        for name, value in spec.headers.items():
            if name.lower() == "message-id":  # the caller's own wins
                del msg["Message-ID"]
            msg[name] = value
        text = render(spec.text, spec.data) if spec.text is not None else None
        html = render(spec.html, spec.data, html=True) if spec.html is not None else None
        msg.set_content(text if text is not None else "This message is in HTML.")
        if html is not None:
            msg.add_alternative(html, subtype="html")
        for ref in spec.attachments:
            if self.artefacts is None:
                raise ValidationError(
                    "attachments need the artefact store: run this kind on a faena server's "
                    "local pool"
                )
            artefact, data = await self.artefacts.get(tenant, ref.artefact_id)
            maintype, _, subtype = str(artefact.content_type).partition(";")[0].partition("/")
            msg.add_attachment(
                data,
                maintype=maintype or "application",
                subtype=subtype or "octet-stream",
                filename=ref.filename or artefact.name,
            )
        return Built(msg, spec.recipients, smtp)

    async def send(self, built: Built) -> Outcome:
        smtp = built.smtp
        starttls = smtp.starttls if smtp.starttls is not None else smtp.effective_port == 587
        started = time.perf_counter()
        try:
            refused, response = await aiosmtplib.send(
                built.message,
                recipients=built.recipients,
                hostname=smtp.host,
                port=smtp.effective_port,
                username=smtp.username,
                password=smtp.password if smtp.username else None,
                use_tls=smtp.ssl,
                start_tls=False if smtp.ssl else starttls,
                tls_context=smtp.tls_context() if (smtp.ssl or starttls) else None,
                timeout=smtp.timeout_s,
            )
        except aiosmtplib.SMTPAuthenticationError as e:
            return failed(f"SMTP login refused by {smtp.address}: {e.message}", retryable=False)
        except aiosmtplib.SMTPRecipientsRefused as e:
            who = ", ".join(r.recipient for r in e.recipients)
            return failed(
                f"SMTP server {smtp.address} refused every recipient: {who}", retryable=False
            )
        except aiosmtplib.SMTPResponseException as e:
            return failed(f"SMTP {e.code} from {smtp.address}: {e.message}", retryable=e.code < 500)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
            return failed(f"SMTP server {smtp.address} unreachable: {describe(e)}")
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        accepted = [r for r in built.recipients if r not in refused]
        return Outcome(
            succeeded=True,
            result={
                "message_id": built.message["Message-ID"],
                "accepted": accepted,
                "refused": {r: str(v) for r, v in refused.items()},
                "smtp": smtp.address,
                "response": response,
                "latency_ms": latency_ms,
            },
        )


class EmailSendKind:
    """``email.send``: a :class:`~faena.ports.executor.KindHandler`. Sends once per job
    (:mod:`faena.worker.kinds.sends`): a later attempt of a job whose message was accepted
    returns the recorded result; the Message-ID is the same on every attempt."""

    def __init__(self, mailer: Mailer, sends: Sends | None = None) -> None:
        self.mailer = mailer
        self.sends = sends or Sends(None)

    def validate(self, payload: Any) -> None:
        parse_email(payload)

    async def run(self, job: Job, sink: ExecutionSink) -> Outcome:
        try:
            spec = parse_email(job.payload)
        except FaenaError as e:
            return failed(f"email.send: {e.message}", retryable=False)
        batch = batch_of("email.send", spec.recipients)
        recorded = await self.sends.recorded(job, batch, sink)
        if recorded is not None:
            return recorded
        try:
            built = await self.mailer.build(
                spec, job.tenant, message_id_for=lambda domain: message_id([job.id], batch, domain)
            )
        except FaenaError as e:
            return failed(f"email.send: {e.message}", retryable=False)
        subject, count = built.message["Subject"], len(built.recipients)
        sink.log(LogStream.STDOUT, f"sending {subject!r} to {count} via {built.smtp.address}\n")
        outcome = await self.mailer.send(built)
        await self.sends.record(job, batch, outcome)
        return outcome

    async def aclose(self) -> None:
        return None
