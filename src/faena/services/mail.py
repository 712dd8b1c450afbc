"""Mailbox watches: the use cases behind ``/v1/mail/watches`` and ``faena mail watch``, and the
watcher that runs them in the background of every server.

Each server's watcher looks at every watch every ``scan_s`` and runs those whose lease it holds
(one server per watch; a lease that is not renewed expires and another server takes over).
Running a watch: connect, read the UIDs above the last one handled, and for each message, in
UID order: parse it, pick a workflow (the watch's rules, else its LLM classifier, else its
default: :mod:`faena.services.mail_routing`), store its attachments as artefacts (once per
part), start a run with the idempotency key ``mail:<watch>:<uidvalidity>:<uid>``, record the
message, then flag or move it and advance ``last_uid``. A crash anywhere in between repeats
the message on the next pass, where the run key and the message record make the repeat a
no-op: a message starts one run, whoever reads it and however often. A message that cannot be
read is parked (recorded with its reason, flagged, optionally moved) and the watch goes on; an
unreachable server is recorded as the watch's ``last_error`` and retried with exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from dataclasses import dataclass, replace
from typing import Any, Protocol

import structlog

from faena.domain.errors import FaenaError, NotFound, ValidationError
from faena.domain.ids import new_id
from faena.domain.mail import (
    DONE_KEYWORD,
    PARKED_KEYWORD,
    MailMessageRecord,
    MailWatch,
    parse_watch,
    run_key,
)
from faena.domain.mail_messages import MalformedMessage, ParsedMessage, parse_message
from faena.ports.clock import Clock
from faena.ports.mail import (
    AcquireWatchParams,
    AdvanceWatchParams,
    ListMessagesParams,
    MailboxConnector,
    MailboxSession,
    MailStore,
    SecretResolver,
)
from faena.services.mail_routing import MessageRouter
from faena.services.workflows import WorkflowService

log = structlog.get_logger("faena.mail")

BATCH = 100  # messages read per pass before the watch's progress is re-checked
MAX_BACKOFF_S = 60.0


class AttachmentStore(Protocol):
    """Where attachments go (the ArtefactService)."""

    async def put(
        self,
        tenant: str,
        name: str,
        content_type: str,
        data: bytes,
        *,
        job_id: str | None = None,
        source_key: str | None = None,
    ) -> Any: ...


class NoSecrets:
    """Used when the server has no secret service: every watch fails with this reason."""

    async def resolve(self, tenant: str, name: str) -> str:
        raise NotFound(f"secret {name!r} cannot be read: this server has no secret store")


class LeaseLost(Exception):
    """Another server holds the watch now: this one stops running it."""


@dataclass(frozen=True, slots=True)
class Handled:
    """What one pass over a message did."""

    state: str  # ingested | parked | skipped | repeat | gone
    run_id: str | None = None
    finish: str = "done"  # what to do to it in the mailbox: done | parked | none


class MailService:
    """Add, list, show and remove watches; list what became of their messages."""

    def __init__(self, store: MailStore, workflows: WorkflowService, clock: Clock) -> None:
        self.store = store
        self.workflows = workflows
        self.clock = clock
        self.watcher: MailWatcher | None = None  # set when this server runs watches

    async def add(self, tenant: str, doc: Any) -> MailWatch:
        watch = parse_watch(doc, tenant=tenant, watch_id=new_id(), now=self.clock.now())
        for name in sorted(watch.workflows()):
            await self._check_workflow(tenant, name)
        return await self.store.create_watch(watch)

    async def _check_workflow(self, tenant: str, name: str) -> None:
        try:
            version = await self.workflows.version(tenant, name)
        except NotFound:
            raise ValidationError(f"no workflow {name!r}: apply it before watching mail") from None
        inputs = version.definition.get("inputs") or {}
        if "message" not in inputs:
            raise ValidationError(
                f"workflow {name!r} must declare an input 'message' (type object): "
                "a watch starts it with the message as that input"
            )

    async def get(self, tenant: str, name: str) -> MailWatch:
        found = await self.store.get_watch(tenant, name)
        if found is None:
            raise NotFound(f"no mail watch {name!r}")
        return found

    async def list_watches(self, tenant: str) -> list[MailWatch]:
        return await self.store.list_watches(tenant)

    async def remove(self, tenant: str, name: str) -> None:
        await self.store.delete_watch(tenant, name)

    async def messages(
        self, tenant: str, name: str, *, state: str | None = None, limit: int = 100
    ) -> list[MailMessageRecord]:
        if state is not None and state not in ("ingested", "parked", "skipped"):
            raise ValidationError("state must be ingested, parked or skipped")
        if not 1 <= limit <= 1000:
            raise ValidationError("limit must be between 1 and 1000")
        watch = await self.get(tenant, name)
        return await self.store.list_messages(ListMessagesParams(tenant, watch.id, state, limit))


class MailWatcher:
    """Runs, on this server, the watches whose lease it holds."""

    def __init__(
        self,
        store: MailStore,
        workflows: WorkflowService,
        clock: Clock,
        *,
        connector: MailboxConnector,
        secrets: SecretResolver,
        attachments: AttachmentStore | None,
        scan_s: float = 2.0,
        lease_s: float = 30.0,
        owner: str | None = None,
        router: MessageRouter | None = None,
    ) -> None:
        self.store = store
        self.router = router or MessageRouter()
        self.workflows = workflows
        self.clock = clock
        self.connector = connector
        self.secrets = secrets
        self.attachments = attachments
        self.scan_s = scan_s
        self.lease_s = max(lease_s, 3 * scan_s)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._task: asyncio.Task[None] | None = None
        self._running: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._supervise(), name="mail")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._running.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for watch_id in list(self._running):
            with contextlib.suppress(Exception):
                await self.store.release_watch(watch_id, self.owner)
        self._running.clear()
        self._task = None

    @property
    def running(self) -> frozenset[str]:
        """The ids of the watches this server runs now."""
        return frozenset(k for k, t in self._running.items() if not t.done())

    async def _supervise(self) -> None:
        while True:
            try:
                await self.scan()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("mail watch scan failed", error=repr(e))
            await asyncio.sleep(self.scan_s)

    async def scan(self) -> None:
        """Renew or take the lease of every watch; start or stop their loops to match."""
        watches = {w.id: w for w in await self.store.all_watches()}
        for watch_id in list(self._running):
            if watch_id not in watches:  # removed
                self._running.pop(watch_id).cancel()
        now = self.clock.now()
        for watch in watches.values():
            held = await self.store.acquire_watch(
                AcquireWatchParams(watch.id, self.owner, now, self.lease_s)
            )
            task = self._running.get(watch.id)
            if held and (task is None or task.done()):
                self._running[watch.id] = asyncio.get_running_loop().create_task(
                    self._run_watch(watch), name=f"mail:{watch.name}"
                )
            elif not held and task is not None:
                log.info("mail watch lease lost", watch=watch.name)
                self._running.pop(watch.id).cancel()

    async def _run_watch(self, watch: MailWatch) -> None:
        backoff = 1.0
        while True:
            session: MailboxSession | None = None
            try:
                password = await self.secrets.resolve(watch.tenant, watch.password_secret)
                session = await self.connector.connect(watch, password)
                backoff = 1.0
                while True:
                    watch = await self.poll(watch, session)
                    await session.wait(watch.poll_s)
            except asyncio.CancelledError:
                raise
            except LeaseLost:
                log.info("mail watch stopped: removed, or run by another server", watch=watch.name)
                return
            except Exception as e:
                reason = e.message if isinstance(e, FaenaError) else f"{type(e).__name__}: {e}"
                log.warning(
                    "mail watch failed; retrying",
                    watch=watch.name,
                    error=reason,
                    retry_in_s=backoff,
                )
                with contextlib.suppress(Exception):
                    await self._progress(watch, watch.uidvalidity or 0, watch.last_uid, reason)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            finally:
                if session is not None:
                    with contextlib.suppress(Exception):
                        await session.close()

    async def poll(self, watch: MailWatch, session: MailboxSession) -> MailWatch:
        """Handle every new message once, in batches of UIDs (one FETCH, one STORE or MOVE
        per batch); return the watch with its progress."""
        uidvalidity = session.uidvalidity
        last = watch.last_uid if watch.uidvalidity == uidvalidity else 0
        if watch.uidvalidity not in (None, uidvalidity):
            log.warning("mailbox UIDVALIDITY changed; rescanning", watch=watch.name)
        while True:
            uids = await session.uids_after(last, BATCH)
            if not uids:
                break
            raws = await session.fetch_many(uids)
            seen = {m.uid: m for m in await self.store.get_messages(watch.id, uidvalidity, uids)}
            outcomes = [
                await self.handle(watch, uidvalidity, u, raws.get(u), seen=seen.get(u), known=True)
                for u in uids
            ]
            done = [u for u, h in zip(uids, outcomes, strict=True) if h.finish == "done"]
            parked = [u for u, h in zip(uids, outcomes, strict=True) if h.finish == "parked"]
            if done:
                move_to = watch.move_to if watch.action == "move" else None
                await session.finish(done, flags=(watch.flag, DONE_KEYWORD), move_to=move_to)
            if parked:
                await session.finish(parked, flags=(PARKED_KEYWORD,), move_to=watch.park_folder)
            last = uids[-1]
            await self._progress(
                watch,
                uidvalidity,
                last,
                None,
                processed=sum(h.state == "ingested" for h in outcomes),
                parked=sum(h.state == "parked" for h in outcomes),
            )
        await self._progress(watch, uidvalidity, last, None)
        return replace(watch, uidvalidity=uidvalidity, last_uid=last)

    async def _progress(
        self,
        watch: MailWatch,
        uidvalidity: int,
        last_uid: int,
        error: str | None,
        *,
        processed: int = 0,
        parked: int = 0,
    ) -> None:
        kept = await self.store.advance_watch(
            AdvanceWatchParams(
                watch.id,
                self.owner,
                uidvalidity,
                last_uid,
                self.clock.now(),
                error,
                processed=processed,
                parked=parked,
            )
        )
        if not kept:
            raise LeaseLost(watch.name)

    async def handle(
        self,
        watch: MailWatch,
        uidvalidity: int,
        uid: int,
        raw: bytes | None,
        *,
        seen: MailMessageRecord | None = None,
        known: bool = False,
    ) -> Handled:
        """One message, once: its run started and its outcome recorded. A repeat (a message
        already recorded: ``seen``, when the caller looked it up already, ``known``) changes
        nothing. The caller flags or moves it as ``finish`` says."""
        if not known:
            seen = await self.store.get_message(watch.id, uidvalidity, uid)
        if seen is not None:
            return Handled("repeat", seen.run_id, "parked" if seen.state == "parked" else "done")
        if raw is None:
            return Handled("gone", finish="none")
        try:
            message = parse_message(raw)
        except MalformedMessage as e:
            return await self._park(watch, uidvalidity, uid, reason=str(e), message=None)
        workflow, classification = await self.router.route(watch, uidvalidity, uid, message)
        if workflow is None:
            await self._record(
                watch, uidvalidity, uid, "skipped", message, classification=classification
            )
            return Handled("skipped")
        try:
            stored = await self._store_attachments(watch, uidvalidity, uid, message)
            given = {
                **message.to_input(stored),
                "uid": uid,
                "watch": watch.name,
                "classification": classification,
            }
            run, _ = await self.workflows.start(
                watch.tenant,
                workflow,
                {"message": given},
                trigger="mail",
                idempotency_key=run_key(watch.id, uidvalidity, uid),
                advance_now=False,  # stored now; the engine submits its first steps at once
            )
        except (ValidationError, NotFound) as e:  # a run this message can never start
            return await self._park(watch, uidvalidity, uid, reason=e.message, message=message)
        except FaenaError as e:
            if e.code != "payload_too_large":
                raise
            return await self._park(watch, uidvalidity, uid, reason=e.message, message=message)
        await self._record(
            watch,
            uidvalidity,
            uid,
            "ingested",
            message,
            run_id=run.id,
            classification=classification,
        )
        return Handled("ingested", run.id)

    async def _park(
        self,
        watch: MailWatch,
        uidvalidity: int,
        uid: int,
        *,
        reason: str,
        message: ParsedMessage | None,
    ) -> Handled:
        log.warning("mail message parked", watch=watch.name, uid=uid, reason=reason)
        await self._record(watch, uidvalidity, uid, "parked", message, reason=reason)
        return Handled("parked", finish="parked")

    async def _record(
        self,
        watch: MailWatch,
        uidvalidity: int,
        uid: int,
        state: str,
        message: ParsedMessage | None,
        *,
        run_id: str | None = None,
        reason: str | None = None,
        classification: dict[str, Any] | None = None,
    ) -> None:
        await self.store.record_message(
            MailMessageRecord(
                watch_id=watch.id,
                tenant=watch.tenant,
                uidvalidity=uidvalidity,
                uid=uid,
                state=state,
                at=self.clock.now(),
                run_id=run_id,
                reason=reason[:1000] if reason else None,
                message_id=message.message_id if message else None,
                subject=message.subject[:300] if message else None,
                classification=classification,
            )
        )

    async def _store_attachments(
        self, watch: MailWatch, uidvalidity: int, uid: int, message: ParsedMessage
    ) -> list[dict[str, Any]]:
        """Each attachment as an artefact, once per (watch, UIDVALIDITY, UID, part): a message
        read again after a crash gets the artefacts of its first reading, not new ones."""
        if not message.attachments:
            return []
        if self.attachments is None:
            raise ValidationError("the message has attachments and this server stores no artefacts")
        stored = []
        for part, a in enumerate(message.attachments):
            artefact = await self.attachments.put(
                watch.tenant,
                a.filename,
                a.content_type,
                a.data,
                source_key=f"{run_key(watch.id, uidvalidity, uid)}:{part}",
            )
            stored.append(
                {
                    "artefact_id": artefact.id,
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "size": len(a.data),
                }
            )
        return stored
