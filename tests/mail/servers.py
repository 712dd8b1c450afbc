"""Real servers for the mail tests, started by the tests: Dovecot (IMAP, IMAPS, STARTTLS),
aiosmtpd (SMTP, optionally STARTTLS + AUTH required) and a small HTTP receiver."""

from __future__ import annotations

import datetime
import imaplib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PASSWORD = "secret-imap-pw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost (cert, key)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_path, 0o600)
    return cert_path, key_path


_DOVECOT_CONF = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_uid = nobody
mail_gid = nogroup
mail_location = maildir:{root}/mail/%u
default_internal_user = root
default_internal_group = root
default_login_user = dovenull
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
service anvil {{
  chroot =
}}
"""


class Dovecot:
    """``dovecot -F`` with a throwaway config: any user name logs in with :data:`PASSWORD`
    and gets its own empty maildir, so each test uses a fresh user."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.cert, self.key = make_cert(root)

    def start(self) -> None:
        binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
        if not os.path.exists(binary):
            raise OSError("dovecot is not installed (apt-get install dovecot-imapd)")
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir(exist_ok=True)
        shutil.chown(self.root / "mail", "nobody", "nogroup")
        conf = self.root / "dovecot.conf"
        conf.write_text(
            _DOVECOT_CONF.format(
                root=self.root,
                cert=self.cert,
                key=self.key,
                password=PASSWORD,
                imap_port=self.imap_port,
                imaps_port=self.imaps_port,
            )
        )
        self.process = subprocess.Popen(
            [binary, "-F", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise OSError(f"dovecot exited: {err.strip()}")
            try:
                socket.create_connection(("127.0.0.1", self.imap_port), timeout=0.2).close()
            except OSError:
                time.sleep(0.05)
            else:
                return
        raise OSError("dovecot did not start listening within 10s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()

    # -- seeding and inspecting, over IMAP --------------------------------------------------

    def connect(self, user: str) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=10)
        conn.login(user, PASSWORD)
        return conn

    def append(self, user: str, raw: bytes, folder: str = "INBOX") -> int:
        conn = self.connect(user)
        try:
            if folder != "INBOX":
                conn.create(f'"{folder}"')
            typ, data = conn.append(f'"{folder}"', None, None, raw)
            assert typ == "OK", data
            # [APPENDUID <uidvalidity> <uid>]
            code = data[0].decode()
            return int(code.split("APPENDUID ", 1)[1].split()[1].rstrip("]"))
        finally:
            conn.logout()

    def append_many(self, user: str, raws: list[bytes]) -> None:
        conn = self.connect(user)
        try:
            for raw in raws:
                typ, data = conn.append("INBOX", None, None, raw)
                assert typ == "OK", data
        finally:
            conn.logout()

    def flags(self, user: str, folder: str = "INBOX") -> dict[int, set[str]]:
        """UID → flags of every message in ``folder``."""
        conn = self.connect(user)
        try:
            typ, _ = conn.select(f'"{folder}"', readonly=True)
            if typ != "OK":
                return {}
            typ, data = conn.uid("FETCH", "1:*", "(UID FLAGS)")
            found: dict[int, set[str]] = {}
            for item in data:
                if not isinstance(item, bytes):
                    continue
                text = item.decode()
                uid = int(text.split("UID ", 1)[1].split()[0].rstrip(")"))
                inner = text.split("FLAGS (", 1)[1].split(")", 1)[0]
                found[uid] = set(inner.split())
            return found
        finally:
            conn.logout()


def message(
    subject: str,
    body: str = "hello",
    *,
    sender: str = "Supplier <billing@supplier.example>",
    to: str = "invoices@acme.example",
    html: str | None = None,
    attachments: list[tuple[str, str, bytes]] = (),  # type: ignore[assignment]
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Sun, 22 Nov 2026 06:00:00 +0000"
    msg["Message-ID"] = f"<{abs(hash((subject, body, time.time_ns())))}@supplier.example>"
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for filename, ctype, data in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return bytes(msg)


# -- SMTP ----------------------------------------------------------------------------------


@dataclass
class SmtpServer:
    """aiosmtpd in its own thread; ``received`` holds every message it accepted."""

    port: int
    received: list[Any] = field(default_factory=list)
    controller: Any = None

    def messages(self) -> list[EmailMessage]:
        return [
            message_from_bytes(env.original_content, policy=policy.default)  # type: ignore[misc]
            for env in self.received
        ]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages()


def start_smtp(
    *, tls: tuple[Path, Path] | None = None, auth: tuple[str, str] | None = None
) -> SmtpServer:
    """An SMTP server on 127.0.0.1. With ``tls`` it offers STARTTLS and requires it; with
    ``auth`` it requires AUTH with that user and password (after STARTTLS)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    server = SmtpServer(port=free_port())

    class Handler:
        async def handle_DATA(self, srv: Any, session: Any, envelope: Any) -> str:
            server.received.append(envelope)
            return "250 Message accepted for delivery"

    def authenticator(srv: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = (
            auth is not None
            and isinstance(data, LoginPassword)
            and data.login.decode() == auth[0]
            and data.password.decode() == auth[1]
        )
        return AuthResult(success=ok, handled=False)

    kwargs: dict[str, Any] = {}
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        kwargs.update(tls_context=context, require_starttls=True)
    if auth is not None:
        kwargs.update(authenticator=authenticator, auth_required=True)
    else:
        kwargs.update(auth_require_tls=False)
    server.controller = Controller(
        Handler(), hostname="127.0.0.1", port=server.port, ready_timeout=10, **kwargs
    )
    server.controller.start()
    return server


# -- HTTP receiver --------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpReceiver:
    """Answers POSTs with the next status of ``statuses`` (then 200) and records them."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.requests.append(Received(self.path, dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
