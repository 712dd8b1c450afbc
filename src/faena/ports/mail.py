"""The mail ports: where watches and their progress are kept (MailStore), and how a server
talks to a mailbox (MailboxConnector / MailboxSession, implemented over IMAP).

Exactly once: a message starts its run with the idempotency key
``mail:<watch>:<uidvalidity>:<uid>`` (the run store keeps one run per key, in the transaction
that creates it), and :meth:`MailStore.record_message` keeps one row per
``(watch, uidvalidity, uid)``. A watch is run by one server at a time, the holder of its lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from faena.domain.mail import MailMessageRecord, MailWatch


@dataclass(frozen=True, slots=True)
class AcquireWatchParams:
    """Take or renew the lease of ``watch_id`` for ``owner`` until ``now + lease_s`` if it is
    free, expired or already ``owner``'s."""

    watch_id: str
    owner: str
    now: float
    lease_s: float


@dataclass(frozen=True, slots=True)
class AdvanceWatchParams:
    """Record progress while ``owner`` still holds the lease: the folder's ``uidvalidity``,
    the highest UID handled, and the outcome of the poll."""

    watch_id: str
    owner: str
    uidvalidity: int
    last_uid: int
    now: float
    error: str | None = None
    processed: int = 0  # added to the counters
    parked: int = 0


@dataclass(frozen=True, slots=True)
class ListMessagesParams:
    tenant: str
    watch_id: str
    state: str | None = None
    limit: int = 100


class MailStore(Protocol):
    async def create_watch(self, watch: MailWatch) -> MailWatch:
        """Conflict when the tenant already has a watch of that name."""

    async def get_watch(self, tenant: str, name: str) -> MailWatch | None: ...

    async def list_watches(self, tenant: str) -> list[MailWatch]: ...

    async def all_watches(self) -> list[MailWatch]:
        """Every tenant's watches (the watcher's view)."""

    async def delete_watch(self, tenant: str, name: str) -> None:
        """NotFound when absent; its message records go with it."""

    async def acquire_watch(self, params: AcquireWatchParams) -> bool: ...

    async def release_watch(self, watch_id: str, owner: str) -> None: ...

    async def advance_watch(self, params: AdvanceWatchParams) -> bool:
        """False when the lease was lost (nothing recorded)."""

    async def record_message(self, record: MailMessageRecord) -> bool:
        """Insert unless ``(watch, uidvalidity, uid)`` is already there; True when inserted."""

    async def get_message(
        self, watch_id: str, uidvalidity: int, uid: int
    ) -> MailMessageRecord | None: ...

    async def get_messages(
        self, watch_id: str, uidvalidity: int, uids: Sequence[int]
    ) -> list[MailMessageRecord]:
        """The records among ``uids`` (one query for a batch)."""

    async def list_messages(self, params: ListMessagesParams) -> list[MailMessageRecord]: ...


@dataclass(frozen=True, slots=True)
class SentRecord:
    """A completed send of a job (``email.send``, ``notify.*``), recorded right after the
    server accepted it: a later attempt of the same job returns ``result`` instead of sending
    again. ``batch`` says which send of the job it was (the kind and a digest of the
    recipients or the endpoint)."""

    tenant: str
    job_id: str
    batch: str
    kind: str
    attempt: int
    result: dict[str, Any]
    sent_at: float


class SendLedger(Protocol):
    """Where completed sends are kept (every store adapter)."""

    async def find_send(self, tenant: str, job_id: str, batch: str) -> SentRecord | None: ...

    async def record_send(self, record: SentRecord) -> bool:
        """Insert unless ``(job_id, batch)`` is there already; True when inserted."""

    async def purge_sends(self, before: float, limit: int = 1000) -> int:
        """Delete up to ``limit`` records sent before ``before``; return how many."""


class MailboxSession(Protocol):
    """One logged-in IMAP connection with a folder selected."""

    @property
    def uidvalidity(self) -> int: ...

    @property
    def supports_idle(self) -> bool: ...

    async def uids_after(self, last_uid: int, limit: int) -> list[int]:
        """UIDs greater than ``last_uid`` without the done/parked keywords, ascending."""

    async def fetch_many(self, uids: Sequence[int]) -> dict[int, bytes]:
        """The raw messages by UID; a UID that is gone is missing from the answer."""

    async def finish(
        self, uids: Sequence[int], *, flags: tuple[str, ...], move_to: str | None = None
    ) -> None:
        """Add ``flags``; then move to ``move_to`` when given (MOVE, or COPY + expunge)."""

    async def wait(self, timeout_s: float) -> None:
        """Return when the folder may have changed (IDLE) or after ``timeout_s``."""

    async def close(self) -> None: ...


class MailboxConnector(Protocol):
    async def connect(self, watch: MailWatch, password: str) -> MailboxSession:
        """Unavailable (unreachable, TLS) or ValidationError (login refused, no folder)."""


class SecretResolver(Protocol):
    async def resolve(self, tenant: str, name: str) -> str:
        """The secret's plaintext; NotFound when the tenant has no such secret."""
