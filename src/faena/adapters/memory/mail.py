"""The MailStore operations of the in-memory store (mixed into ``MemoryStore``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import orjson

from faena.domain.errors import Conflict, NotFound
from faena.domain.mail import MailMessageRecord, MailWatch
from faena.ports.mail import (
    AcquireWatchParams,
    AdvanceWatchParams,
    ListMessagesParams,
    SentRecord,
)


class MemoryMail:
    """The MailStore methods of ``MemoryStore``. Watches and records are frozen dataclasses,
    replaced on change, so callers never alter stored state."""

    _mail_watches: dict[str, MailWatch]
    _mail_messages: dict[tuple[str, int, int], MailMessageRecord]
    _mail_sends: dict[tuple[str, str], SentRecord]

    def _mail(self) -> dict[str, MailWatch]:
        if not hasattr(self, "_mail_watches"):
            self._mail_watches = {}
            self._mail_messages = {}
            self._mail_sends = {}
        return self._mail_watches

    def _named(self, tenant: str, name: str) -> MailWatch | None:
        return next(
            (w for w in self._mail().values() if w.tenant == tenant and w.name == name), None
        )

    async def create_watch(self, watch: MailWatch) -> MailWatch:
        if self._named(watch.tenant, watch.name) is not None:
            raise Conflict(f"a mail watch named {watch.name!r} already exists")
        self._mail()[watch.id] = watch
        return watch

    async def get_watch(self, tenant: str, name: str) -> MailWatch | None:
        return self._named(tenant, name)

    async def list_watches(self, tenant: str) -> list[MailWatch]:
        return sorted(
            (w for w in self._mail().values() if w.tenant == tenant), key=lambda w: w.name
        )

    async def all_watches(self) -> list[MailWatch]:
        return sorted(self._mail().values(), key=lambda w: (w.tenant, w.name))

    async def delete_watch(self, tenant: str, name: str) -> None:
        found = self._named(tenant, name)
        if found is None:
            raise NotFound(f"no mail watch {name!r}")
        del self._mail()[found.id]
        for key in [k for k in self._mail_messages if k[0] == found.id]:
            del self._mail_messages[key]

    async def acquire_watch(self, params: AcquireWatchParams) -> bool:
        w = self._mail().get(params.watch_id)
        if w is None:
            return False
        if w.lease_owner not in (None, params.owner) and w.lease_until >= params.now:
            return False
        self._mail()[w.id] = replace(
            w, lease_owner=params.owner, lease_until=params.now + params.lease_s
        )
        return True

    async def release_watch(self, watch_id: str, owner: str) -> None:
        w = self._mail().get(watch_id)
        if w is not None and w.lease_owner == owner:
            self._mail()[w.id] = replace(w, lease_owner=None, lease_until=0.0)

    async def advance_watch(self, params: AdvanceWatchParams) -> bool:
        p = params
        w = self._mail().get(p.watch_id)
        if w is None or w.lease_owner != p.owner:
            return False
        self._mail()[w.id] = replace(
            w,
            uidvalidity=p.uidvalidity,
            last_uid=p.last_uid,
            last_error=p.error,
            last_polled_at=p.now,
            processed=w.processed + p.processed,
            parked=w.parked + p.parked,
        )
        return True

    async def record_message(self, record: MailMessageRecord) -> bool:
        if record.watch_id not in self._mail():
            raise NotFound(f"no mail watch {record.watch_id!r}")
        key = (record.watch_id, record.uidvalidity, record.uid)
        if key in self._mail_messages:
            return False
        self._mail_messages[key] = record
        return True

    async def get_message(
        self, watch_id: str, uidvalidity: int, uid: int
    ) -> MailMessageRecord | None:
        self._mail()
        return self._mail_messages.get((watch_id, uidvalidity, uid))

    async def get_messages(
        self, watch_id: str, uidvalidity: int, uids: Sequence[int]
    ) -> list[MailMessageRecord]:
        self._mail()
        keys = ((watch_id, uidvalidity, uid) for uid in uids)
        return [self._mail_messages[k] for k in keys if k in self._mail_messages]

    async def list_messages(self, params: ListMessagesParams) -> list[MailMessageRecord]:
        w = self._mail().get(params.watch_id)
        if w is None or w.tenant != params.tenant:
            return []
        found = [
            m
            for m in self._mail_messages.values()
            if m.watch_id == params.watch_id and params.state in (None, m.state)
        ]
        found.sort(key=lambda m: (m.at, m.uid), reverse=True)
        return found[: params.limit]

    async def find_send(self, tenant: str, job_id: str, batch: str) -> SentRecord | None:
        self._mail()
        found = self._mail_sends.get((job_id, batch))
        if found is None or found.tenant != tenant:
            return None
        return replace(found, result=orjson.loads(orjson.dumps(found.result)))

    async def record_send(self, record: SentRecord) -> bool:
        self._mail()
        key = (record.job_id, record.batch)
        if key in self._mail_sends:
            return False
        self._mail_sends[key] = replace(record, result=orjson.loads(orjson.dumps(record.result)))
        return True

    async def purge_sends(self, before: float, limit: int = 1000) -> int:
        self._mail()
        gone = [k for k, r in self._mail_sends.items() if r.sent_at < before][:limit]
        for key in gone:
            del self._mail_sends[key]
        return len(gone)
