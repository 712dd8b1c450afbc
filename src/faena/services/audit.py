"""The audit log: an append-only record of every mutating call, authentication failure and
secret access.

Trade-off (documented in docs/security.md): :meth:`AuditLog.record` returns only once its entry
is committed, so a call whose response was sent is always in the log. Entries are not written
one by one: every entry that arrives while a write is in flight goes into the next write (group
commit), so many concurrent calls share one transaction and the store sees few, large writes.
A write that fails is retried with backoff for up to ``give_up_s``; after that the caller gets
the error (the API logs the entry as an error line, so it is never silently dropped).

With a ``bus``, each write publishes one ``audit.written`` event per tenant it wrote entries of
(``{"count": n}``), so a live audit page reads the new entries; ``WS /v1/events`` sends it
only to keys that may read the audit log.

``durable=False`` (``FAENA_AUDIT_DURABLE=false``) lets :meth:`AuditLog.record_call` return at
once: API answers no longer wait for their entry, which is written by the next group commit and
flushed at shutdown; a crash can lose the entries of the last few milliseconds.
:meth:`AuditLog.record` always waits.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

import structlog

from faena.domain.audit import OUTCOMES, AuditEntry
from faena.domain.errors import Unavailable, ValidationError
from faena.domain.events import Event
from faena.domain.ids import new_id
from faena.ports.audit import AuditPage, AuditQuery, AuditStore, PurgeAuditParams
from faena.ports.bus import EventBus
from faena.ports.clock import Clock
from faena.services.breaker import log_store_error

log = structlog.get_logger("faena.audit")

MAX_LIST_LIMIT = 500
DEFAULT_RETENTION_DAYS = 90.0


class AuditLog:
    def __init__(
        self,
        store: AuditStore,
        clock: Clock,
        *,
        max_batch: int = 500,
        retry_delay_s: float = 0.05,
        give_up_s: float = 5.0,
        durable: bool = True,
        bus: EventBus | None = None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._max_batch = max_batch
        self._retry_delay_s = retry_delay_s
        self._give_up_s = give_up_s
        self.durable = durable
        self._pending: list[tuple[AuditEntry, asyncio.Future[None] | None]] = []
        self._task: asyncio.Task[None] | None = None
        self.written_total = 0

    async def record(self, entry: AuditEntry) -> None:
        """Append ``entry`` (its ``id`` and ``at`` filled in when empty); return once stored."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue(entry, done)
        await asyncio.shield(done)  # a cancelled caller does not cancel the others' write

    async def record_call(self, entry: AuditEntry) -> None:
        """An API call's entry: stored before returning when ``durable``, else queued."""
        if self.durable:
            await self.record(entry)
        else:
            self._queue(entry, None)

    def _queue(self, entry: AuditEntry, done: asyncio.Future[None] | None) -> None:
        if not entry.id or not entry.at:
            entry = replace(entry, id=entry.id or new_id(), at=entry.at or self._clock.now())
        self._pending.append((entry, done))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="audit")

    async def _run(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                error = await self._write([entry for entry, _ in batch])
                for _, done in batch:
                    if done is not None and not done.done():
                        if error is None:
                            done.set_result(None)
                        else:
                            done.set_exception(error)
        finally:
            self._task = None

    async def _write(self, entries: Sequence[AuditEntry]) -> BaseException | None:
        """Write one batch, retrying while the store is away; the last error after ``give_up_s``.
        Entry ids make a retried write idempotent (a lost commit acknowledgement)."""
        deadline = self._clock.now() + self._give_up_s
        delay = self._retry_delay_s
        while True:
            try:
                await self._store.append_audit(entries)
            except Exception as e:
                if self._clock.now() + delay > deadline:
                    log_store_error(log, "audit write failed", e, entries=len(entries))
                    return e
                log_store_error(log, "audit write failed; retrying", e, in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            else:
                self.written_total += len(entries)
                if self._bus is not None:
                    self._bus.publish(written_events(entries, self._clock.now()))
                return None

    async def list(self, query: AuditQuery) -> AuditPage:
        if not 1 <= query.limit <= MAX_LIST_LIMIT:
            raise ValidationError(f"limit must be between 1 and {MAX_LIST_LIMIT}")
        if query.outcome is not None and query.outcome not in OUTCOMES:
            raise ValidationError(f"outcome must be one of {', '.join(OUTCOMES)}")
        if query.since is not None and query.until is not None and query.since >= query.until:
            raise ValidationError("since must be before until")
        return await self._store.list_audit(query)

    async def purge_before(self, before: float, *, batch: int = 1000) -> int:
        """Delete the entries recorded before ``before`` (retention), batch by batch."""
        purged = 0
        while True:
            n = await self._store.purge_audit(PurgeAuditParams(before=before, limit=batch))
            purged += n
            if n < batch:
                return purged
            await asyncio.sleep(0.01)  # the hot path keeps its turn on the store

    async def close(self) -> None:
        """Wait for the entries queued or being written (shutdown)."""
        task = self._task
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), self._give_up_s + 1)
            except (TimeoutError, Unavailable):
                log.warning("audit entries still unwritten at shutdown", pending=len(self._pending))


def written_events(entries: Sequence[AuditEntry], now: float) -> list[Event]:
    """One ``audit.written`` event per tenant with entries in a write: how many it got."""
    counts = Counter(entry.tenant for entry in entries)
    return [Event("audit.written", t, data={"count": n}, ts=now) for t, n in counts.items()]
