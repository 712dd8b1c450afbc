"""Put invoice emails (with a PDF attached) into a mailbox over IMAP, for the invoice-intake
example. Standard library only.

    python seed_mailbox.py --total 1250.00 --due 2026-12-15
    python seed_mailbox.py --scanned --total 480.00          # a scanned PDF: read with OCR
    python seed_mailbox.py --count 1000 --total 99           # benchmark load

Connection flags default to the local test servers of ``local_servers.py``.
"""

from __future__ import annotations

import argparse
import imaplib
import io
import os
import ssl
import sys
from email.message import EmailMessage
from email.utils import formatdate, make_msgid


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def text_pdf(lines: list[str]) -> bytes:
    """A one-page PDF with ``lines`` in Helvetica: a real text layer, no library needed."""
    content = "BT /F1 14 Tf 72 740 Td 20 TL\n"
    content += "".join(f"({_escape(line)}) Tj T*\n" for line in lines) + "ET"
    stream = content.encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 5 0 R"
        b" /Resources << /Font << /F1 3 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()


def scanned_pdf(lines: list[str]) -> bytes:
    """The same page as an image only (like a scanner makes): needs Pillow."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=40)
    image = Image.new("L", (1700, 160 + len(lines) * 80), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((80, 60 + i * 80), line, font=font, fill=0)
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "PDF", resolution=200.0)
    return buf.getvalue()


def invoice_lines(number: str, total: str, currency: str, due: str) -> list[str]:
    return [
        f"Invoice {number}",
        "Faena Supplies Ltd, 1 Harbour Road",
        f"Total due {total} {currency}",
        f"Due date: {due}",
        "Thank you for your business",
    ]


def invoice_message(
    *,
    number: str = "INV-2026-0042",
    total: str = "1,250.00",
    currency: str = "EUR",
    due: str = "2026-12-15",
    scanned: bool = False,
    sender: str = "Faena Supplies <billing@supplies.example>",
    to: str = "invoices@example.org",
) -> bytes:
    """An email with the invoice as a PDF attachment."""
    lines = invoice_lines(number, total, currency, due)
    pdf = scanned_pdf(lines) if scanned else text_pdf(lines)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = f"Invoice {number}"
    msg["Date"] = formatdate()
    msg["Message-ID"] = make_msgid(domain="supplies.example")
    msg.set_content(f"Hello,\n\nplease find invoice {number} attached.\n\nFaena Supplies\n")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"{number}.pdf")
    return bytes(msg)


def connect(args: argparse.Namespace) -> imaplib.IMAP4:
    context = ssl.create_default_context()
    if not args.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if args.security == "ssl":
        conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(args.host, args.port, ssl_context=context)
    else:
        conn = imaplib.IMAP4(args.host, args.port)
        if args.security == "starttls":
            conn.starttls(ssl_context=context)
    conn.login(args.user, args.password)
    return conn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=10143)
    parser.add_argument("--security", choices=["ssl", "starttls", "none"], default="starttls")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="verify the server's certificate (off by default: the local server's is self-signed)",
    )
    parser.add_argument("--user", default="invoices")
    parser.add_argument("--password", default=os.environ.get("IMAP_PASSWORD", "invoices-pw"))
    parser.add_argument("--folder", default="INBOX")
    parser.add_argument("--number", default="INV-2026-0042")
    parser.add_argument("--total", default="1,250.00")
    parser.add_argument("--currency", default="EUR")
    parser.add_argument("--due", default="2026-12-15")
    parser.add_argument("--scanned", action="store_true", help="attach a scanned (image) PDF")
    parser.add_argument("--count", type=int, default=1, help="how many messages to add")
    args = parser.parse_args(argv)
    conn = connect(args)
    try:
        for i in range(args.count):
            number = args.number if args.count == 1 else f"{args.number}-{i + 1}"
            raw = invoice_message(
                number=number,
                total=args.total,
                currency=args.currency,
                due=args.due,
                scanned=args.scanned,
            )
            typ, data = conn.append(args.folder, None, None, raw)
            if typ != "OK":
                print(f"APPEND refused: {data!r}", file=sys.stderr)
                return 1
    finally:
        conn.logout()
    print(f"added {args.count} invoice message(s) to {args.user}@{args.host}/{args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
