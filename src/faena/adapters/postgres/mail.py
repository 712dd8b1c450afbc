"""The MailStore on PostgreSQL, mixed into ``PostgresStore``. A watch's lease is taken with a
conditional ``UPDATE`` (one server wins); message rows are ``INSERT … ON CONFLICT DO NOTHING``
on ``(watch_id, uidvalidity, uid)``. A tenant's calls run under row-level security
(``_tenant_connection``); the watcher's run as the owner, across tenants."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from faena.adapters import mail_rows
from faena.domain.errors import Conflict, NotFound
from faena.domain.mail import MailMessageRecord, MailWatch
from faena.ports.mail import (
    AcquireWatchParams,
    AdvanceWatchParams,
    ListMessagesParams,
    SentRecord,
)

_WATCH = f"SELECT {mail_rows.WATCH_COLUMNS} FROM mail_watches"
_MESSAGE = f"SELECT {mail_rows.MESSAGE_COLUMNS} FROM mail_messages"


class PostgresMail:
    """The MailStore methods of ``PostgresStore``."""

    if TYPE_CHECKING:

        def _connection(self, doing: str) -> AbstractAsyncContextManager[Any]: ...

        def _tenant_connection(
            self, tenant: str, doing: str
        ) -> AbstractAsyncContextManager[Any]: ...

    async def create_watch(self, watch: MailWatch) -> MailWatch:
        async with self._tenant_connection(watch.tenant, "creating a mail watch") as conn:
            row = await conn.fetchrow(
                "INSERT INTO mail_watches (id, tenant, name, spec, created_at) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, name) DO NOTHING "
                f"RETURNING {mail_rows.WATCH_COLUMNS}",
                watch.id,
                watch.tenant,
                watch.name,
                mail_rows.spec_json(watch),
                watch.created_at,
            )
        if row is None:
            raise Conflict(f"a mail watch named {watch.name!r} already exists")
        return mail_rows.watch(row)

    async def get_watch(self, tenant: str, name: str) -> MailWatch | None:
        async with self._tenant_connection(tenant, "reading a mail watch") as conn:
            row = await conn.fetchrow(_WATCH + " WHERE tenant = $1 AND name = $2", tenant, name)
        return None if row is None else mail_rows.watch(row)

    async def list_watches(self, tenant: str) -> list[MailWatch]:
        async with self._tenant_connection(tenant, "listing mail watches") as conn:
            rows = await conn.fetch(_WATCH + " WHERE tenant = $1 ORDER BY name", tenant)
        return [mail_rows.watch(r) for r in rows]

    async def all_watches(self) -> list[MailWatch]:
        async with self._connection("listing mail watches") as conn:
            rows = await conn.fetch(_WATCH + " ORDER BY tenant, name")
        return [mail_rows.watch(r) for r in rows]

    async def delete_watch(self, tenant: str, name: str) -> None:
        async with self._tenant_connection(tenant, "deleting a mail watch") as conn:
            status = await conn.execute(
                "DELETE FROM mail_watches WHERE tenant = $1 AND name = $2", tenant, name
            )
        if status != "DELETE 1":
            raise NotFound(f"no mail watch {name!r}")

    async def acquire_watch(self, params: AcquireWatchParams) -> bool:
        p = params
        async with self._connection("leasing a mail watch") as conn:
            status = await conn.execute(
                "UPDATE mail_watches SET lease_owner = $1, lease_until = $2 WHERE id = $3 "
                "AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < $4)",
                p.owner,
                p.now + p.lease_s,
                p.watch_id,
                p.now,
            )
        return bool(status == "UPDATE 1")

    async def release_watch(self, watch_id: str, owner: str) -> None:
        async with self._connection("releasing a mail watch") as conn:
            await conn.execute(
                "UPDATE mail_watches SET lease_owner = NULL, lease_until = 0 "
                "WHERE id = $1 AND lease_owner = $2",
                watch_id,
                owner,
            )

    async def advance_watch(self, params: AdvanceWatchParams) -> bool:
        p = params
        async with self._connection("recording mail watch progress") as conn:
            status = await conn.execute(
                "UPDATE mail_watches SET uidvalidity = $1, last_uid = $2, last_error = $3, "
                "last_polled_at = $4, processed = processed + $5, parked = parked + $6 "
                "WHERE id = $7 AND lease_owner = $8",
                p.uidvalidity,
                p.last_uid,
                p.error,
                p.now,
                p.processed,
                p.parked,
                p.watch_id,
                p.owner,
            )
        return bool(status == "UPDATE 1")

    async def record_message(self, record: MailMessageRecord) -> bool:
        m = record
        async with self._connection("recording a mail message") as conn:
            # One statement: the watch's tenant comes from its row, and no row (a removed
            # watch) inserts nothing; then the second SELECT tells the two cases apart.
            inserted = await conn.fetchval(
                "WITH w AS (SELECT tenant FROM mail_watches WHERE id = $1), "
                "ins AS (INSERT INTO mail_messages (watch_id, uidvalidity, uid, tenant, state, "
                "at, run_id, reason, message_id, subject, classification) "
                "SELECT $1, $2, $3, w.tenant, $4, $5, $6, $7, $8, $9, $10 FROM w "
                "ON CONFLICT DO NOTHING RETURNING 1) "
                "SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM w) THEN -1 "
                "ELSE (SELECT count(*) FROM ins) END",
                m.watch_id, m.uidvalidity, m.uid, m.state, m.at, m.run_id, m.reason,
                m.message_id, m.subject, mail_rows.classification_json(m),
            )  # fmt: skip
        if inserted == -1:
            raise NotFound(f"no mail watch {m.watch_id!r}")
        return bool(inserted == 1)

    async def get_message(
        self, watch_id: str, uidvalidity: int, uid: int
    ) -> MailMessageRecord | None:
        async with self._connection("reading a mail message") as conn:
            row = await conn.fetchrow(
                _MESSAGE + " WHERE watch_id = $1 AND uidvalidity = $2 AND uid = $3",
                watch_id,
                uidvalidity,
                uid,
            )
        return None if row is None else mail_rows.message(row)

    async def get_messages(
        self, watch_id: str, uidvalidity: int, uids: Sequence[int]
    ) -> list[MailMessageRecord]:
        if not uids:
            return []
        async with self._connection("reading mail messages") as conn:
            rows = await conn.fetch(
                _MESSAGE + " WHERE watch_id = $1 AND uidvalidity = $2 AND uid = ANY($3::bigint[])",
                watch_id,
                uidvalidity,
                list(uids),
            )
        return [mail_rows.message(r) for r in rows]

    async def list_messages(self, params: ListMessagesParams) -> list[MailMessageRecord]:
        p = params
        async with self._tenant_connection(p.tenant, "listing mail messages") as conn:
            rows = await conn.fetch(
                _MESSAGE + " WHERE tenant = $1 AND watch_id = $2 "
                "AND ($3::text IS NULL OR state = $3) ORDER BY at DESC, uid DESC LIMIT $4",
                p.tenant,
                p.watch_id,
                p.state,
                p.limit,
            )
        return [mail_rows.message(r) for r in rows]

    async def find_send(self, tenant: str, job_id: str, batch: str) -> SentRecord | None:
        async with self._connection("reading a recorded send") as conn:
            row = await conn.fetchrow(
                f"SELECT {mail_rows.SEND_COLUMNS} FROM notification_sends "
                "WHERE job_id = $1 AND batch = $2 AND tenant = $3",
                job_id,
                batch,
                tenant,
            )
        return None if row is None else mail_rows.send(row)

    async def record_send(self, record: SentRecord) -> bool:
        async with self._connection("recording a send") as conn:
            status = await conn.execute(
                f"INSERT INTO notification_sends ({mail_rows.SEND_COLUMNS}) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                *mail_rows.send_values(record),
            )
        return bool(status == "INSERT 0 1")

    async def purge_sends(self, before: float, limit: int = 1000) -> int:
        async with self._connection("purging recorded sends") as conn:
            status: str = await conn.execute(
                "DELETE FROM notification_sends WHERE ctid IN (SELECT ctid FROM "
                "notification_sends WHERE sent_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
                before,
                limit,
            )
        return int(status.rsplit(" ", 1)[-1])
