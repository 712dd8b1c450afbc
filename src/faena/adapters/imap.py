"""The MailboxConnector over IMAP: the standard library's ``imaplib`` on a thread of its own
per connection (IMAPS, STARTTLS or plain), with IDLE done by hand (``imaplib`` has none before
Python 3.14): the thread waits on the socket and on a wake-up pipe, so closing never hangs.

Driver errors become faena's here: a server that cannot be reached or drops the connection is
:class:`Unavailable`; a refused login or a missing folder is a :class:`ValidationError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import re
import select
import socket
import ssl
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from faena.domain.errors import FaenaError, Unavailable, ValidationError
from faena.domain.mail import DONE_KEYWORD, PARKED_KEYWORD, MailWatch

T = TypeVar("T")
CONNECT_TIMEOUT_S = 30.0
MAX_IDLE_S = 25 * 60.0  # RFC 2177: re-issue IDLE at least every 29 minutes
FETCH_CHUNK = 25  # messages per UID FETCH: fewer round trips, bounded memory
_UID = re.compile(rb"UID (\d+)")


def _tls_context(watch: MailWatch) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=watch.ca_file)
    if not watch.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _quote(folder: str) -> str:
    return '"' + folder + '"'


class ImapSession:
    """One logged-in connection with the watch's folder selected. Every call runs on the
    session's own thread, one at a time."""

    def __init__(self, watch: MailWatch) -> None:
        self.watch = watch
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"faena-imap-{watch.name}")
        self._conn: imaplib.IMAP4 | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._uidvalidity = 0
        self._idle = False
        self._move = False
        self._idle_tag = 0

    @property
    def uidvalidity(self) -> int:
        return self._uidvalidity

    @property
    def supports_idle(self) -> bool:
        return self._idle

    async def _call(self, fn: Callable[[], T]) -> T:
        def guarded() -> T:
            try:
                return fn()
            except FaenaError:
                raise
            except imaplib.IMAP4.abort as e:
                raise Unavailable(f"IMAP connection to {self._where()} dropped: {e}") from None
            except imaplib.IMAP4.error as e:
                raise ValidationError(f"IMAP server {self._where()} refused: {e}") from None
            except (OSError, EOFError) as e:
                raise Unavailable(f"IMAP server {self._where()} unreachable: {e}") from None

        return await asyncio.get_running_loop().run_in_executor(self._thread, guarded)

    def _where(self) -> str:
        return f"{self.watch.host}:{self.watch.port}"

    def _open(self, password: str) -> None:
        w = self.watch
        if w.security == "ssl":
            conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                w.host, w.port, ssl_context=_tls_context(w), timeout=CONNECT_TIMEOUT_S
            )
        else:
            conn = imaplib.IMAP4(w.host, w.port, timeout=CONNECT_TIMEOUT_S)
            if w.security == "starttls":
                if "STARTTLS" not in conn.capabilities:
                    conn.shutdown()
                    raise Unavailable(f"IMAP server {self._where()} does not offer STARTTLS")
                conn.starttls(ssl_context=_tls_context(w))
        self._conn = conn
        try:
            conn.login(w.username, password)
        except imaplib.IMAP4.error as e:
            raise ValidationError(
                f"IMAP login as {w.username!r} on {self._where()} refused: {_text(e)}"
            ) from None
        typ, _ = conn.select(_quote(w.folder))
        if typ != "OK":
            raise ValidationError(f"IMAP folder {w.folder!r} cannot be selected on {self._where()}")
        _, data = conn.response("UIDVALIDITY")
        if not data or data[0] is None:
            raise Unavailable(f"IMAP server {self._where()} did not report UIDVALIDITY")
        self._uidvalidity = int(data[0])
        typ, data = conn.capability()  # they grow after login (MOVE, UIDPLUS …)
        capabilities = tuple(bytes(data[0] or b"").decode().upper().split()) if typ == "OK" else ()
        self._idle = "IDLE" in capabilities
        self._move = "MOVE" in capabilities

    async def open(self, password: str) -> None:
        try:
            await self._call(lambda: self._open(password))
        except BaseException:
            await self.close()
            raise

    def _conn_or_fail(self) -> imaplib.IMAP4:
        if self._conn is None:
            raise Unavailable("the IMAP session is closed")
        return self._conn

    async def uids_after(self, last_uid: int, limit: int) -> list[int]:
        def search() -> list[int]:
            conn = self._conn_or_fail()
            typ, data = conn.uid(
                "SEARCH",
                f"UID {last_uid + 1}:* NOT KEYWORD {DONE_KEYWORD} NOT KEYWORD {PARKED_KEYWORD}",
            )
            if typ != "OK":
                raise Unavailable(f"IMAP SEARCH failed on {self._where()}: {data!r}")
            found = sorted(
                int(x) for chunk in data if chunk for x in bytes(chunk).split() if int(x) > last_uid
            )
            return found[:limit]

        return await self._call(search)

    async def fetch_many(self, uids: Sequence[int]) -> dict[int, bytes]:
        def fetch(chunk: Sequence[int]) -> dict[int, bytes]:
            typ, data = self._conn_or_fail().uid(
                "FETCH", ",".join(map(str, chunk)), "(UID BODY.PEEK[])"
            )
            if typ != "OK":
                raise Unavailable(f"IMAP FETCH failed on {self._where()}: {_text(data)}")
            found: dict[int, bytes] = {}
            for item in data:
                if isinstance(item, tuple) and len(item) == 2:
                    m = _UID.search(bytes(item[0]))
                    if m is not None:
                        found[int(m.group(1))] = bytes(item[1])
            return found

        found: dict[int, bytes] = {}
        for start in range(0, len(uids), FETCH_CHUNK):
            chunk = uids[start : start + FETCH_CHUNK]
            found.update(await self._call(lambda c=chunk: fetch(c)))  # type: ignore[misc]
        return found

    async def finish(
        self, uids: Sequence[int], *, flags: tuple[str, ...], move_to: str | None = None
    ) -> None:
        if not uids:
            return
        uid_set = ",".join(map(str, uids))

        def finish() -> None:
            conn = self._conn_or_fail()
            typ, data = conn.uid("STORE", uid_set, "+FLAGS", "(" + " ".join(flags) + ")")
            if typ != "OK":
                raise Unavailable(f"IMAP STORE on UIDs {uid_set} failed: {_text(data)}")
            if move_to is None:
                return
            conn.create(_quote(move_to))  # NO when it exists already: fine
            if self._move:
                typ, data = conn.uid("MOVE", uid_set, _quote(move_to))
            else:
                typ, data = conn.uid("COPY", uid_set, _quote(move_to))
                if typ == "OK":
                    conn.uid("STORE", uid_set, "+FLAGS", "(\\Deleted)")
                    conn.expunge()
            if typ != "OK":
                raise ValidationError(f"IMAP cannot move to {move_to!r}: {_text(data)}")

        await self._call(finish)

    async def wait(self, timeout_s: float) -> None:
        if not (self._idle and self.watch.idle):
            await asyncio.sleep(timeout_s)
            return
        await self._call(lambda: self._idle_once(min(timeout_s, MAX_IDLE_S)))

    def _idle_once(self, timeout_s: float) -> None:
        conn = self._conn_or_fail()
        self._idle_tag += 1
        tag = f"FI{self._idle_tag}".encode()
        conn.send(tag + b" IDLE\r\n")
        first = conn.readline()
        if not first.startswith(b"+"):
            raise Unavailable(f"IMAP IDLE refused by {self._where()}: {_text(first)}")
        sock = conn.socket()
        pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
        if not pending:
            select.select([sock, self._wake_r], [], [], timeout_s)
        conn.send(b"DONE\r\n")
        for _ in range(10_000):  # the untagged news, then the tagged end of IDLE
            line = conn.readline()
            if not line:
                raise Unavailable(f"IMAP connection to {self._where()} closed during IDLE")
            if line.startswith(tag):
                return
        raise Unavailable(f"IMAP IDLE on {self._where()} did not end")

    async def close(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

        def logout() -> None:
            conn, self._conn = self._conn, None
            if conn is not None:
                try:
                    conn.logout()
                except Exception:  # already gone: nothing left to close politely
                    conn.shutdown() if conn.sock is not None else None

        try:
            await asyncio.get_running_loop().run_in_executor(self._thread, logout)
        finally:
            self._thread.shutdown(wait=False)
            self._wake_r.close()
            self._wake_w.close()


def _text(value: object) -> str:
    if isinstance(value, list | tuple):
        value = b" ".join(v for v in value if isinstance(v, bytes))
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return " ".join(str(value).split())[:300]


class ImapConnector:
    """Opens an :class:`ImapSession` for a watch."""

    async def connect(self, watch: MailWatch, password: str) -> ImapSession:
        session = ImapSession(watch)
        await session.open(password)
        return session
