"""The MailStore operations of the SQLite store (mixed into ``SqliteStore``): writes on the
writer thread, reads on the reader thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import orjson

from faena.adapters import mail_rows
from faena.adapters.sqlite.connection import transaction
from faena.domain.errors import Conflict, NotFound
from faena.domain.mail import MailMessageRecord, MailWatch
from faena.ports.mail import (
    AcquireWatchParams,
    AdvanceWatchParams,
    ListMessagesParams,
    SentRecord,
)

A = TypeVar("A")
T = TypeVar("T")

_WATCH = f"SELECT {mail_rows.WATCH_COLUMNS} FROM mail_watches"
_MESSAGE = f"SELECT {mail_rows.MESSAGE_COLUMNS} FROM mail_messages"


def create_watch(conn: sqlite3.Connection, w: MailWatch) -> MailWatch:
    cur = conn.execute(
        "INSERT INTO mail_watches (id, tenant, name, spec, created_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (tenant, name) DO NOTHING",
        (w.id, w.tenant, w.name, mail_rows.spec_json(w), w.created_at),
    )
    if cur.rowcount != 1:
        raise Conflict(f"a mail watch named {w.name!r} already exists")
    return mail_rows.watch(conn.execute(_WATCH + " WHERE id = ?", (w.id,)).fetchone())


def get_watch(conn: sqlite3.Connection, key: tuple[str, str]) -> MailWatch | None:
    row = conn.execute(_WATCH + " WHERE tenant = ? AND name = ?", key).fetchone()
    return None if row is None else mail_rows.watch(row)


def list_watches(conn: sqlite3.Connection, tenant: str | None) -> list[MailWatch]:
    if tenant is None:
        rows = conn.execute(_WATCH + " ORDER BY tenant, name")
    else:
        rows = conn.execute(_WATCH + " WHERE tenant = ? ORDER BY name", (tenant,))
    return [mail_rows.watch(r) for r in rows]


def delete_watch(conn: sqlite3.Connection, key: tuple[str, str]) -> None:
    with transaction(conn):
        row = conn.execute(
            "SELECT id FROM mail_watches WHERE tenant = ? AND name = ?", key
        ).fetchone()
        if row is None:
            raise NotFound(f"no mail watch {key[1]!r}")
        conn.execute("DELETE FROM mail_messages WHERE watch_id = ?", (row[0],))
        conn.execute("DELETE FROM mail_watches WHERE id = ?", (row[0],))


def acquire_watch(conn: sqlite3.Connection, p: AcquireWatchParams) -> bool:
    cur = conn.execute(
        "UPDATE mail_watches SET lease_owner = ?, lease_until = ? "
        "WHERE id = ? AND (lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)",
        (p.owner, p.now + p.lease_s, p.watch_id, p.owner, p.now),
    )
    return cur.rowcount == 1


def release_watch(conn: sqlite3.Connection, key: tuple[str, str]) -> None:
    conn.execute(
        "UPDATE mail_watches SET lease_owner = NULL, lease_until = 0 "
        "WHERE id = ? AND lease_owner = ?",
        key,
    )


def advance_watch(conn: sqlite3.Connection, p: AdvanceWatchParams) -> bool:
    cur = conn.execute(
        "UPDATE mail_watches SET uidvalidity = ?, last_uid = ?, last_error = ?, "
        "last_polled_at = ?, processed = processed + ?, parked = parked + ? "
        "WHERE id = ? AND lease_owner = ?",
        (p.uidvalidity, p.last_uid, p.error, p.now, p.processed, p.parked, p.watch_id, p.owner),
    )
    return cur.rowcount == 1


def record_message(conn: sqlite3.Connection, m: MailMessageRecord) -> bool:
    with transaction(conn):
        row = conn.execute("SELECT tenant FROM mail_watches WHERE id = ?", (m.watch_id,)).fetchone()
        if row is None:
            raise NotFound(f"no mail watch {m.watch_id!r}")
        cur = conn.execute(
            "INSERT INTO mail_messages (watch_id, uidvalidity, uid, tenant, state, at, run_id, "
            "reason, message_id, subject, classification) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            mail_rows.message_values(m, row[0]),
        )
    return cur.rowcount == 1


def get_message(conn: sqlite3.Connection, key: tuple[str, int, int]) -> MailMessageRecord | None:
    row = conn.execute(
        _MESSAGE + " WHERE watch_id = ? AND uidvalidity = ? AND uid = ?", key
    ).fetchone()
    return None if row is None else mail_rows.message(row)


def get_messages(
    conn: sqlite3.Connection, key: tuple[str, int, Sequence[int]]
) -> list[MailMessageRecord]:
    watch_id, uidvalidity, uids = key
    rows = conn.execute(
        _MESSAGE + " WHERE watch_id = ? AND uidvalidity = ? "
        "AND uid IN (SELECT value FROM json_each(?))",
        (watch_id, uidvalidity, orjson.dumps(list(uids)).decode()),
    )
    return [mail_rows.message(r) for r in rows]


def list_messages(conn: sqlite3.Connection, p: ListMessagesParams) -> list[MailMessageRecord]:
    rows = conn.execute(
        _MESSAGE + " WHERE tenant = ? AND watch_id = ? AND (? IS NULL OR state = ?) "
        "ORDER BY at DESC, uid DESC LIMIT ?",
        (p.tenant, p.watch_id, p.state, p.state, p.limit),
    )
    return [mail_rows.message(r) for r in rows]


def find_send(conn: sqlite3.Connection, key: tuple[str, str, str]) -> SentRecord | None:
    row = conn.execute(
        f"SELECT {mail_rows.SEND_COLUMNS} FROM notification_sends "
        "WHERE job_id = ? AND batch = ? AND tenant = ?",
        (key[1], key[2], key[0]),
    ).fetchone()
    return None if row is None else mail_rows.send(row)


def record_send(conn: sqlite3.Connection, record: SentRecord) -> bool:
    with transaction(conn):
        cur = conn.execute(
            f"INSERT INTO notification_sends ({mail_rows.SEND_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            mail_rows.send_values(record),
        )
    return cur.rowcount == 1


def purge_sends(conn: sqlite3.Connection, args: tuple[float, int]) -> int:
    with transaction(conn):
        return conn.execute(
            "DELETE FROM notification_sends WHERE rowid IN "
            "(SELECT rowid FROM notification_sends WHERE sent_at < ? LIMIT ?)",
            args,
        ).rowcount


class SqliteMail:
    """The MailStore methods of ``SqliteStore``."""

    if TYPE_CHECKING:

        async def _write(self, op: Callable[[sqlite3.Connection, A], T], arg: A) -> T: ...

        async def _read(self, op: Callable[[sqlite3.Connection, A], T], arg: A) -> T: ...

    async def create_watch(self, watch: MailWatch) -> MailWatch:
        return await self._write(create_watch, watch)

    async def get_watch(self, tenant: str, name: str) -> MailWatch | None:
        return await self._read(get_watch, (tenant, name))

    async def list_watches(self, tenant: str) -> list[MailWatch]:
        return await self._read(list_watches, tenant)

    async def all_watches(self) -> list[MailWatch]:
        return await self._read(list_watches, None)

    async def delete_watch(self, tenant: str, name: str) -> None:
        await self._write(delete_watch, (tenant, name))

    async def acquire_watch(self, params: AcquireWatchParams) -> bool:
        return await self._write(acquire_watch, params)

    async def release_watch(self, watch_id: str, owner: str) -> None:
        await self._write(release_watch, (watch_id, owner))

    async def advance_watch(self, params: AdvanceWatchParams) -> bool:
        return await self._write(advance_watch, params)

    async def record_message(self, record: MailMessageRecord) -> bool:
        return await self._write(record_message, record)

    async def get_message(
        self, watch_id: str, uidvalidity: int, uid: int
    ) -> MailMessageRecord | None:
        return await self._read(get_message, (watch_id, uidvalidity, uid))

    async def get_messages(
        self, watch_id: str, uidvalidity: int, uids: Sequence[int]
    ) -> list[MailMessageRecord]:
        if not uids:
            return []
        return await self._read(get_messages, (watch_id, uidvalidity, uids))

    async def list_messages(self, params: ListMessagesParams) -> list[MailMessageRecord]:
        return await self._read(list_messages, params)

    async def find_send(self, tenant: str, job_id: str, batch: str) -> SentRecord | None:
        return await self._read(find_send, (tenant, job_id, batch))

    async def record_send(self, record: SentRecord) -> bool:
        return await self._write(record_send, record)

    async def purge_sends(self, before: float, limit: int = 1000) -> int:
        return await self._write(purge_sends, (before, limit))
