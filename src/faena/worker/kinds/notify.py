"""Notification kinds: ``notify.webhook`` (a signed JSON POST), ``notify.slack`` (a
Slack-compatible incoming webhook) and ``notify.email`` (a short email).

- Templated: ``text``/``subject`` (and string values of ``body``) render with a sandboxed
  Jinja2 from ``data``.
- Grouped: Slack and email notifications to the same channel (webhook URL; recipients + SMTP
  server) that arrive within ``group_s`` of the first one are sent as one message (lines joined,
  or an email digest). Every job of the group gets the same delivery result with ``grouped: N``.
  Webhooks are never grouped: each POST is one event for the receiver.
- Retried: a failed delivery fails the attempt (retryable on network errors, timeouts, 5xx and
  429; not on other 4xx); the job's own retry policy (``retries`` on the step) repeats it with
  exponential backoff.
- Breaker: each endpoint has a circuit breaker; after ``breaker_failures`` failed deliveries in
  a row it opens and attempts fail at once, without calling the endpoint, for
  ``breaker_reset_s``; then one attempt probes it.
- Recorded: the job's result is the delivery status: endpoint, HTTP status, latency, attempt.
- Once per job: a successful delivery is recorded in the store (:mod:`.sends`); a later attempt
  of the same job returns it instead of delivering again.
- Signed: ``notify.webhook`` signs with the payload's ``secret``, else with the tenant's secret
  ``NOTIFY_WEBHOOK_SECRET`` when it has one (on a server's own pool).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from faena.domain.errors import FaenaError, ValidationError
from faena.domain.jobs import Job
from faena.domain.signatures import EVENT_TYPE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from faena.ports.executor import ExecutionSink
from faena.worker.kinds.email import (
    EmailSpec,
    Mailer,
    check_template,
    parse_addresses,
    parse_smtp,
    render,
)
from faena.worker.kinds.notify_delivery import (
    Breakers,
    Grouper,
    HttpDelivery,
    NotifyConfig,
    endpoint_of,
)
from faena.worker.kinds.sends import Sends, batch_of, message_id
from faena.worker.outcome import Outcome, describe, failed

__all__ = ["DEFAULT_SECRET_NAME", "NotifyConfig", "notify_kinds"]
DEFAULT_SECRET_NAME = "NOTIFY_WEBHOOK_SECRET"  # the tenant's default webhook signing secret
DefaultSecret = Callable[[str], Awaitable[str | None]]  # tenant -> its default secret, if any
MAX_TIMEOUT_S = 300.0


def _url(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{where}: 'url' is required (an http:// or https:// URL)")
    try:
        parts = urlsplit(value)
    except ValueError as e:
        raise ValidationError(f"{where}: 'url' is malformed: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"{where}: 'url' must be an absolute http:// or https:// URL")
    return value


def _fields(payload: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ValidationError(f"{where} must be an object")
    unknown = sorted(set(payload) - set(allowed))
    if unknown:
        raise ValidationError(
            f"{where}: unknown field {unknown[0]!r}; expected {', '.join(allowed)}"
        )
    return payload


def _timeout(payload: dict[str, Any], where: str) -> float:
    value = payload.get("timeout_s", 10.0)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value <= MAX_TIMEOUT_S
    ):
        raise ValidationError(f"{where}: 'timeout_s' must be between 0 and {MAX_TIMEOUT_S:g}")
    return float(value)


def _data(payload: dict[str, Any], where: str) -> dict[str, Any]:
    data = payload.get("data", {})
    if not isinstance(data, dict):
        raise ValidationError(f"{where}: 'data' must be an object (the templates' variables)")
    return data


def _render_deep(value: Any, data: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return render(value, data)
    if isinstance(value, dict):
        return {k: _render_deep(v, data) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_deep(v, data) for v in value]
    return value


# -- notify.webhook ---------------------------------------------------------------------------

WEBHOOK_FIELDS = ("url", "body", "text", "data", "secret", "headers", "event", "timeout_s")


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    url: str
    body: Any
    secret: str | None
    headers: dict[str, str]
    event: str
    timeout_s: float


def parse_webhook(payload: Any) -> WebhookSpec:
    where = "notify.webhook payload"
    fields = _fields(payload, where, WEBHOOK_FIELDS)
    url = _url(fields.get("url"), where)
    data = _data(fields, where)
    if "body" in fields and "text" in fields:
        raise ValidationError(f"{where}: give 'body' (JSON) or 'text', not both")
    if "text" in fields:
        if not isinstance(fields["text"], str):
            raise ValidationError(f"{where}: 'text' must be a string")
        if data:
            check_template(fields["text"], f"{where}: 'text'")
    secret = fields.get("secret")
    if secret is not None and (not isinstance(secret, str) or not secret):
        raise ValidationError(f"{where}: 'secret' must be a non-empty string")
    headers = fields.get("headers", {})
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ValidationError(f"{where}: 'headers' must map names to strings")
    event = fields.get("event", "notification")
    if not isinstance(event, str) or not event:
        raise ValidationError(f"{where}: 'event' must be a non-empty string")
    body = {"text": fields["text"]} if "text" in fields else fields.get("body", {})
    return WebhookSpec(
        url, _render_deep(body, data), secret, headers, event, _timeout(fields, where)
    )


class NotifyWebhookKind:
    def __init__(
        self,
        http: HttpDelivery,
        breakers: Breakers,
        clock: Callable[[], float],
        *,
        sends: Sends | None = None,
        default_secret: DefaultSecret | None = None,
    ) -> None:
        self.http = http
        self.breakers = breakers
        self.clock = clock
        self.sends = sends or Sends(None)
        self.default_secret = default_secret

    def validate(self, payload: Any) -> None:
        parse_webhook(payload)

    async def run(self, job: Job, sink: ExecutionSink) -> Outcome:
        try:
            spec = parse_webhook(job.payload)
        except FaenaError as e:
            return failed(e.message, retryable=False)
        batch = batch_of("notify.webhook", [spec.url])
        recorded = await self.sends.recorded(job, batch, sink)
        if recorded is not None:
            return recorded
        secret = spec.secret
        if secret is None and self.default_secret is not None:
            try:
                secret = await self.default_secret(job.tenant)
            except FaenaError as e:  # the tenant has one but it cannot be read: never unsigned
                return failed(f"{DEFAULT_SECRET_NAME}: {e.message}", retryable=False)
            except Exception as e:
                return failed(f"{DEFAULT_SECRET_NAME} cannot be read: {describe(e)}")
        body = orjson.dumps(spec.body)
        ts = int(self.clock())
        headers = {**spec.headers, EVENT_TYPE_HEADER: spec.event, TIMESTAMP_HEADER: str(ts)}
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, ts, body)
        endpoint = endpoint_of(spec.url)
        outcome = await self.breakers.call(
            endpoint,
            lambda: self.http.post(spec.url, body, headers, spec.timeout_s, job.attempts),
        )
        if outcome.succeeded and isinstance(outcome.result, dict):
            outcome = Outcome(True, {**outcome.result, "signed": bool(secret)})
        _log(sink, endpoint, outcome)
        await self.sends.record(job, batch, outcome)
        return outcome

    async def aclose(self) -> None:
        return None


def _log(sink: ExecutionSink, endpoint: str, outcome: Outcome) -> None:
    from faena.domain.logs import LogStream

    if outcome.succeeded:
        sink.log(LogStream.STDOUT, f"delivered to {endpoint}\n")
    else:
        sink.log(LogStream.STDERR, f"not delivered to {endpoint}: {outcome.error}\n")


# -- notify.slack -----------------------------------------------------------------------------

SLACK_FIELDS = ("url", "text", "data", "channel", "username", "icon_emoji", "timeout_s")


@dataclass(frozen=True, slots=True)
class SlackSpec:
    url: str
    text: str
    extras: dict[str, str]
    timeout_s: float
    attempt: int = 0


def parse_slack(payload: Any) -> SlackSpec:
    where = "notify.slack payload"
    fields = _fields(payload, where, SLACK_FIELDS)
    url = _url(fields.get("url"), where)
    text = fields.get("text")
    if not isinstance(text, str) or not text:
        raise ValidationError(f"{where}: 'text' is required (a template)")
    data = _data(fields, where)
    if data:
        check_template(text, f"{where}: 'text'")
    extras: dict[str, str] = {}
    for name in ("channel", "username", "icon_emoji"):
        if name in fields:
            if not isinstance(fields[name], str):
                raise ValidationError(f"{where}: {name!r} must be a string")
            extras[name] = fields[name]
    return SlackSpec(url, render(text, data), extras, _timeout(fields, where))


class NotifySlackKind:
    def __init__(
        self,
        http: HttpDelivery,
        breakers: Breakers,
        config: NotifyConfig,
        sends: Sends | None = None,
    ) -> None:
        self.http = http
        self.breakers = breakers
        self.sends = sends or Sends(None)
        self.grouper: Grouper[SlackSpec] = Grouper(config.group_s, config.max_group, self._send)

    def validate(self, payload: Any) -> None:
        parse_slack(payload)

    async def _send(self, specs: list[SlackSpec]) -> Outcome:
        first = specs[0]
        body = orjson.dumps({**first.extras, "text": "\n".join(s.text for s in specs)})
        return await self.breakers.call(
            endpoint_of(first.url),
            lambda: self.http.post(first.url, body, {}, first.timeout_s, first.attempt),
        )

    async def run(self, job: Job, sink: ExecutionSink) -> Outcome:
        try:
            spec = parse_slack(job.payload)
        except FaenaError as e:
            return failed(e.message, retryable=False)
        spec = SlackSpec(spec.url, spec.text, spec.extras, spec.timeout_s, job.attempts)
        key = spec.url + "|" + orjson.dumps(spec.extras, option=orjson.OPT_SORT_KEYS).decode()
        batch = batch_of("notify.slack", [key])
        recorded = await self.sends.recorded(job, batch, sink)
        if recorded is not None:
            return recorded
        outcome = await self.grouper.submit(key, spec)
        _log(sink, endpoint_of(spec.url), outcome)
        await self.sends.record(job, batch, outcome)
        return outcome

    async def aclose(self) -> None:
        await self.grouper.aclose()


# -- notify.email -----------------------------------------------------------------------------

NOTIFY_EMAIL_FIELDS = ("to", "subject", "text", "data", "from", "smtp")


@dataclass(frozen=True, slots=True)
class _Mail:
    spec: EmailSpec
    tenant: str
    subject: str
    text: str
    job_id: str = ""
    batch: str = ""


def parse_notify_email(payload: Any) -> EmailSpec:
    where = "notify.email payload"
    fields = _fields(payload, where, NOTIFY_EMAIL_FIELDS)
    to = parse_addresses(fields.get("to"), "to", where, required=True)
    subject, text = fields.get("subject"), fields.get("text")
    if not isinstance(subject, str) or not isinstance(text, str):
        raise ValidationError(f"{where}: 'subject' and 'text' are required strings (templates)")
    data = _data(fields, where)
    if data:
        check_template(subject, f"{where}: 'subject'")
        check_template(text, f"{where}: 'text'")
    sender = parse_addresses(fields.get("from"), "from", where)
    return EmailSpec(
        to=to,
        subject=subject,
        text=text,
        sender=sender[0] if sender else None,
        data=data,
        smtp=parse_smtp(fields.get("smtp"), where),
    )


class NotifyEmailKind:
    """Short emails; several to the same recipients within the window become one digest."""

    def __init__(
        self,
        mailer: Mailer,
        breakers: Breakers,
        config: NotifyConfig,
        sends: Sends | None = None,
    ) -> None:
        self.mailer = mailer
        self.breakers = breakers
        self.sends = sends or Sends(None)
        self.grouper: Grouper[_Mail] = Grouper(config.group_s, config.max_group, self._send)

    def validate(self, payload: Any) -> None:
        parse_notify_email(payload)

    async def _send(self, mails: list[_Mail]) -> Outcome:
        first = mails[0]
        if len(mails) == 1:
            spec = first.spec
        else:
            digest = "\n\n".join(f"— {m.subject}\n\n{m.text}" for m in mails)
            spec = EmailSpec(
                to=first.spec.to,
                subject=f"{len(mails)} notifications: {first.subject}",
                text=digest,
                sender=first.spec.sender,
                smtp=first.spec.smtp,
            )
        ids = [m.job_id for m in mails]
        try:
            built = await self.mailer.build(
                spec,
                first.tenant,
                message_id_for=lambda domain: message_id(ids, first.batch, domain),
            )
        except FaenaError as e:
            return failed(e.message, retryable=False)
        return await self.breakers.call(
            "smtp://" + built.smtp.address, lambda: self.mailer.send(built)
        )

    async def run(self, job: Job, sink: ExecutionSink) -> Outcome:
        try:
            spec = parse_notify_email(job.payload)
            subject = render(spec.subject, spec.data)
            text = render(spec.text or "", spec.data)
        except FaenaError as e:
            return failed(e.message, retryable=False)
        plain = EmailSpec(
            to=spec.to, subject=subject, text=text, sender=spec.sender, smtp=spec.smtp
        )
        key = "|".join(
            [",".join(sorted(spec.to)), spec.sender or "", spec.smtp.host or "", job.tenant]
        )
        batch = batch_of("notify.email", spec.to)
        recorded = await self.sends.recorded(job, batch, sink)
        if recorded is not None:
            return recorded
        mail = _Mail(plain, job.tenant, subject, text, job.id, batch)
        outcome = await self.grouper.submit(key, mail)
        _log(sink, "email to " + ", ".join(spec.to), outcome)
        await self.sends.record(job, batch, outcome)
        return outcome

    async def aclose(self) -> None:
        await self.grouper.aclose()


# -- wiring -----------------------------------------------------------------------------------


def notify_kinds(
    mailer: Mailer,
    config: NotifyConfig,
    clock: Callable[[], float] = time.time,
    *,
    sends: Sends | None = None,
    default_secret: DefaultSecret | None = None,
) -> dict[str, Any]:
    """The three notification kinds, sharing one HTTP client, one set of breakers and the
    ledger of sends (None: a worker without a store)."""
    http = HttpDelivery()
    breakers = Breakers(config)

    class _Closer(NotifyWebhookKind):
        async def aclose(self) -> None:
            await http.aclose()

    return {
        "notify.webhook": _Closer(
            http, breakers, clock, sends=sends, default_secret=default_secret
        ),
        "notify.slack": NotifySlackKind(http, breakers, config, sends),
        "notify.email": NotifyEmailKind(mailer, breakers, config, sends),
    }
