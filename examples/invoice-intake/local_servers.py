"""Throwaway servers for trying the invoice-intake example on your machine:

- an IMAP server (Debian's Dovecot: ``apt-get install dovecot-imapd``) on 127.0.0.1:10143, plain
  and STARTTLS with a self-signed certificate; user ``invoices``, password ``invoices-pw``
  (any user name works, each gets its own empty mailbox under ``./.local-mail``);
- an SMTP server on 127.0.0.1:2525 (aiosmtpd) that prints each message it receives;
- a webhook receiver on 127.0.0.1:9000 that prints each POST and checks its signature against
  ``FINANCE_WEBHOOK_SECRET``.

    python local_servers.py          # Ctrl-C stops all three

Nothing here is for production: passwords are static and the certificate is self-signed.
"""

from __future__ import annotations

import datetime
import getpass
import hashlib
import hmac
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE / ".local-mail"
IMAP_PORT, SMTP_PORT, WEBHOOK_PORT = 10143, 2525, 9000
PASSWORD = os.environ.get("IMAP_PASSWORD", "invoices-pw")

CONF = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
default_internal_user = {internal}
default_internal_group = {internal_group}
default_login_user = {login}
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={mail_group} home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


def self_signed_cert() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (ROOT / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = ROOT / "key.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)


def start_dovecot() -> subprocess.Popen[bytes] | None:
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not os.path.exists(binary):
        print("dovecot not found (apt-get install dovecot-imapd): no local IMAP server")
        return None
    for sub in ("run", "state", "mail"):
        (ROOT / sub).mkdir(parents=True, exist_ok=True)
    if not (ROOT / "cert.pem").exists():
        self_signed_cert()
    if os.geteuid() == 0:  # Dovecot never reads mail as root
        internal, internal_group, login, mail_user, mail_group = (
            "root", "root", "dovenull", "nobody", "nogroup",
        )  # fmt: skip
        ROOT.chmod(0o755)
        shutil.chown(ROOT / "mail", mail_user, mail_group)
    else:
        me = getpass.getuser()
        group = pwd.getpwnam(me).pw_gid
        internal = login = mail_user = me
        internal_group = mail_group = str(group)
    conf = ROOT / "dovecot.conf"
    conf.write_text(
        CONF.format(
            root=ROOT,
            internal=internal,
            internal_group=internal_group,
            login=login,
            mail_user=mail_user,
            mail_group=mail_group,
            password=PASSWORD,
            port=IMAP_PORT,
        )
    )
    process = subprocess.Popen([binary, "-F", "-c", str(conf)], start_new_session=True)
    print(f"IMAP     127.0.0.1:{IMAP_PORT} (STARTTLS) user invoices / {PASSWORD}")
    return process


def start_smtp() -> Any:
    from aiosmtpd.controller import Controller

    class Printer:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            msg = message_from_bytes(envelope.original_content, policy=policy.default)
            files = [p.get_filename() for p in msg.iter_attachments()]
            print(f"\n--- email to {', '.join(envelope.rcpt_tos)}: {msg['Subject']}")
            body = msg.get_body(("plain",))
            print(body.get_content().rstrip() if body else "(no text)")
            if files:
                print(f"attachments: {', '.join(str(f) for f in files)}")
            return "250 OK"

    controller = Controller(Printer(), hostname="127.0.0.1", port=SMTP_PORT)
    controller.start()
    print(f"SMTP     127.0.0.1:{SMTP_PORT} (no TLS, no auth: prints what it receives)")
    return controller


def start_webhook() -> ThreadingHTTPServer:
    secret = os.environ.get("FINANCE_WEBHOOK_SECRET")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            verdict = "unsigned"
            if secret:
                ts = self.headers.get("X-Faena-Timestamp", "")
                expected = (
                    "v1="
                    + hmac.new(
                        secret.encode(), f"{ts}.".encode() + body, hashlib.sha256
                    ).hexdigest()
                )
                given = self.headers.get("X-Faena-Signature", "")
                verdict = (
                    "signature OK" if hmac.compare_digest(expected, given) else "BAD SIGNATURE"
                )
            print(f"\n--- webhook {self.path} ({verdict}):")
            print(json.dumps(json.loads(body or b"null"), indent=2))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", WEBHOOK_PORT), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    print(f"webhook  http://127.0.0.1:{WEBHOOK_PORT}/ (prints each POST)")
    return server


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)  # stop Dovecot on `kill` too
    dovecot = start_dovecot()
    smtp = start_smtp()
    webhook = start_webhook()
    print("Ctrl-C to stop.")
    try:
        while dovecot is None or dovecot.poll() is None:
            time.sleep(0.5)
        print("dovecot exited: see .local-mail/dovecot.log", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        if dovecot is not None and dovecot.poll() is None:
            os.killpg(dovecot.pid, signal.SIGTERM)
            dovecot.wait(10)
        smtp.stop()
        webhook.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
