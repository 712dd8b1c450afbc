"""The composition root's mail part (issue 9): the ``email.send`` and ``notify.*`` kinds, the
mailbox watches' service and the watcher, built from settings and the runtime's services.

The artefact and secret services belong to other areas and may be built after this runs, so
they are looked up on the runtime when first used, not when wired.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from faena.config import Settings
from faena.domain.errors import NotFound, ValidationError
from faena.ports.mail import SendLedger
from faena.services.mail import MailService, MailWatcher
from faena.services.mail_routing import MessageRouter
from faena.services.retention import DAY_S
from faena.worker.kinds.email import EmailSendKind, Mailer, SmtpConfig, parse_smtp_url
from faena.worker.kinds.notify import DEFAULT_SECRET_NAME, NotifyConfig, notify_kinds
from faena.worker.kinds.sends import Sends

if TYPE_CHECKING:
    from faena.bootstrap import Runtime
    from faena.ports.executor import KindHandler


def smtp_default(settings: Settings) -> SmtpConfig:
    """``FAENA_SMTP_URL`` + ``FAENA_SMTP_PASSWORD`` + ``FAENA_SMTP_FROM``."""
    if settings.smtp_url:
        return parse_smtp_url(settings.smtp_url, settings.smtp_password, settings.smtp_from)
    return SmtpConfig(sender=settings.smtp_from)


def notify_config(settings: Settings) -> NotifyConfig:
    return NotifyConfig(
        group_s=settings.notify_group_s,
        breaker_failures=settings.notify_breaker_failures,
        breaker_reset_s=settings.notify_breaker_reset_s,
    )


class _RuntimeArtefacts:
    """The runtime's ArtefactService, found when first needed."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def _service(self) -> Any:
        service = getattr(self.runtime, "artefacts", None)
        if service is None:
            raise ValidationError("this server has no artefact store")
        return service

    async def get(self, tenant: str, artefact_id: str) -> tuple[Any, bytes]:
        found: tuple[Any, bytes] = await self._service().get(tenant, artefact_id)
        return found

    async def put(
        self,
        tenant: str,
        name: str,
        content_type: str,
        data: bytes,
        *,
        job_id: str | None = None,
        source_key: str | None = None,
    ) -> Any:
        return await self._service().put(
            tenant, name, content_type, data, job_id=job_id, source_key=source_key
        )


class _RuntimeSecrets:
    """The runtime's SecretService (``resolve(tenant, name)``), found when first needed."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def resolve(self, tenant: str, name: str) -> str:
        service = getattr(self.runtime, "secrets", None)
        if service is None:
            raise NotFound(f"secret {name!r} cannot be read: this server has no secret store")
        value: str = await service.resolve(tenant, name)
        return value


class _DefaultWebhookSecret:
    """The tenant's ``NOTIFY_WEBHOOK_SECRET``, if it has one, for ``notify.webhook`` payloads
    without a ``secret``; looked up at most every ``ttl_s`` per tenant."""

    def __init__(self, runtime: Runtime, ttl_s: float = 5.0) -> None:
        self.runtime = runtime
        self.ttl_s = ttl_s
        self._known: dict[str, tuple[float, bool]] = {}

    async def __call__(self, tenant: str) -> str | None:
        service = getattr(self.runtime, "secrets", None)
        if service is None:
            return None
        now = time.monotonic()
        known = self._known.get(tenant)
        if known is None or known[0] < now:
            names = {info.name for info in await service.list(tenant)}
            known = (now + self.ttl_s, DEFAULT_SECRET_NAME in names)
            self._known[tenant] = known
        if not known[1]:
            return None
        value: str = await service.resolve(
            tenant, DEFAULT_SECRET_NAME, purpose="notify.webhook signature"
        )
        return value


def mail_kinds(settings: Settings, runtime: Runtime) -> dict[str, KindHandler]:
    """The kinds on this server's pool: sends recorded in the store (once per job), webhooks
    signed with the tenant's default secret when the payload gives none."""
    mailer = Mailer(smtp_default(settings), _RuntimeArtefacts(runtime))
    ledger: SendLedger = runtime.store  # type: ignore[assignment]  # every adapter is one
    sends = Sends(ledger)
    kinds: dict[str, KindHandler] = {"email.send": EmailSendKind(mailer, sends)}
    kinds.update(
        notify_kinds(
            mailer,
            notify_config(settings),
            sends=sends,
            default_secret=_DefaultWebhookSecret(runtime),
        )
    )
    retention = runtime.retention
    if retention is not None and settings.retention_days > 0:
        keep_s = settings.retention_days * DAY_S
        retention.add("notification sends", lambda: _purge_sends(ledger, keep_s))
    return kinds


async def _purge_sends(ledger: SendLedger, keep_s: float) -> int:
    """Records of sends older than the jobs' retention (their jobs are gone too)."""
    before = time.time() - keep_s
    purged = 0
    while True:
        n = await ledger.purge_sends(before, 1000)
        purged += n
        if n < 1000:
            return purged


def remote_mail_kinds(settings: Settings) -> dict[str, KindHandler]:
    """The same kinds for a remote ``faena worker``: no artefact store there, so
    ``email.send`` refuses attachments with a clear reason."""
    mailer = Mailer(smtp_default(settings), None)
    kinds: dict[str, KindHandler] = {"email.send": EmailSendKind(mailer)}
    kinds.update(notify_kinds(mailer, notify_config(settings)))
    return kinds


def build_mail(settings: Settings, runtime: Runtime, connector: Any | None = None) -> MailService:
    """The watches' service; with ``mail_watch`` on, the watcher joins the background services
    started and stopped with the runtime's automation."""
    automation = runtime.automation
    assert automation is not None  # built before the kinds and the watches
    workflows = automation.workflows
    service = MailService(runtime.store, workflows, workflows.clock)  # type: ignore[arg-type]
    if settings.mail_watch:
        if connector is None:
            from faena.adapters.imap import ImapConnector

            connector = ImapConnector()
        watcher = MailWatcher(
            runtime.store,  # type: ignore[arg-type]  # every adapter is also a MailStore
            workflows,
            workflows.clock,
            connector=connector,
            secrets=_RuntimeSecrets(runtime),
            attachments=_RuntimeArtefacts(runtime),
            scan_s=settings.mail_scan_s,
            # the LLM service is built with the kinds; looked up when a message needs it
            router=MessageRouter(lambda: getattr(runtime, "llm", None)),
        )
        automation.services.append(watcher)
        service.watcher = watcher
    return service
