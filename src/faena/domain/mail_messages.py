"""Reading one RFC 5322 message: headers, plain text, HTML turned into text, attachments.

Pure (bytes in, values out) so it is tested without a mail server. A message that cannot be
read sensibly raises :class:`MalformedMessage` with the reason; the watcher parks it.
"""

from __future__ import annotations

import contextlib
import email
import email.errors
import email.policy
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

MAX_MESSAGE_BYTES = 50 * 1024 * 1024
MAX_TEXT_CHARS = 200_000
_FATAL_DEFECTS = (
    email.errors.NoBoundaryInMultipartDefect,
    email.errors.StartBoundaryNotFoundDefect,
    email.errors.MultipartInvariantViolationDefect,
)


class MalformedMessage(Exception):
    """The message cannot be ingested; ``str(error)`` says why."""


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    message_id: str | None
    subject: str
    sender: str  # the From address
    to: list[str]
    cc: list[str]
    date: str | None  # ISO 8601
    text: str  # the text/plain part, or the HTML converted to text
    html: str | None
    headers: dict[str, str]
    attachments: list[Attachment] = field(default_factory=list)

    def rule_values(self) -> dict[str, str]:
        """What the watch's rules match against."""
        return {
            "from": self.sender,
            "to": ", ".join(self.to + self.cc),
            "subject": self.subject,
            "body": self.text,
        }

    def to_input(self, attachments: list[dict[str, Any]]) -> dict[str, Any]:
        """The message as a run's ``message`` input (attachments as stored artefacts)."""
        return {
            "message_id": self.message_id,
            "subject": self.subject,
            "from": self.sender,
            "to": self.to,
            "cc": self.cc,
            "date": self.date,
            "text": self.text,
            "html": self.html,
            "headers": self.headers,
            "attachments": attachments,
        }


KEPT_HEADERS = ("message-id", "in-reply-to", "references", "reply-to", "list-id", "return-path")


def parse_message(raw: bytes) -> ParsedMessage:
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"message is larger than {MAX_MESSAGE_BYTES} bytes")
    if not raw.strip():
        raise MalformedMessage("message is empty")
    try:
        # compat32: raw header strings, decoded below only for the few headers read; the
        # default policy parses every header into objects and costs ten times more.
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    except Exception as e:  # the parser is lenient; this is a bug-class input
        raise MalformedMessage(f"cannot parse message: {type(e).__name__}: {e}") from None
    if not any(msg.get(h) for h in ("from", "subject", "date", "message-id")):
        raise MalformedMessage("message has no headers (no From, Subject, Date or Message-ID)")
    for part in msg.walk():
        for defect in part.defects:
            if isinstance(defect, _FATAL_DEFECTS):
                raise MalformedMessage(f"broken MIME structure: {type(defect).__name__}")
    return _read(msg)


def _read(msg: Message) -> ParsedMessage:
    try:
        sender_list = _addresses(msg, "from")
        to = _addresses(msg, "to")
        cc = _addresses(msg, "cc")
        subject = _header(msg, "subject")
        headers = {h: _header(msg, h) for h in KEPT_HEADERS if msg.get(h) is not None}
    except Exception as e:
        raise MalformedMessage(f"unreadable header: {type(e).__name__}: {e}") from None
    if not sender_list:
        raise MalformedMessage("message has no valid From address")
    text_parts: list[str] = []
    html_parts: list[str] = []
    attachments: list[Attachment] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        ctype = part.get_content_type()
        filename = part.get_filename()
        if disposition == "attachment" or filename or not ctype.startswith("text/"):
            data = part.get_payload(decode=True)
            if not isinstance(data, bytes):
                raise MalformedMessage(f"attachment {filename or ctype!r} cannot be decoded")
            attachments.append(
                Attachment(_safe_name(filename, ctype, len(attachments)), ctype, data)
            )
        elif ctype == "text/html":
            html_parts.append(_text_of(part))
        else:
            text_parts.append(_text_of(part))
    html = "\n".join(html_parts) if html_parts else None
    text = "\n".join(text_parts).strip()
    if not text and html is not None:
        text = html_to_text(html)
    return ParsedMessage(
        message_id=headers.get("message-id"),
        subject=subject,
        sender=sender_list[0],
        to=to,
        cc=cc,
        date=_date(msg),
        text=text[:MAX_TEXT_CHARS],
        html=html[:MAX_TEXT_CHARS] if html is not None else None,
        headers=headers,
        attachments=attachments,
    )


def _decoded(value: object) -> str:
    """An RFC 2047 encoded header (``=?utf-8?q?...?=``) as text."""
    text = str(value)
    if "=?" in text:
        # Undecodable: kept as it came (readable enough, and not a reason to park).
        with contextlib.suppress(LookupError, ValueError, UnicodeDecodeError):
            text = str(make_header(decode_header(text)))
    return text


def _header(msg: Message, name: str) -> str:
    value = msg.get(name)
    return "" if value is None else " ".join(_decoded(value).split())


def _addresses(msg: Message, name: str) -> list[str]:
    values = msg.get_all(name) or []
    return [addr for _, addr in getaddresses([_decoded(v) for v in values]) if "@" in addr]


def _date(msg: Message) -> str | None:
    value = msg.get("date")
    if value is None:
        return None
    try:
        return parsedate_to_datetime(str(value)).isoformat()
    except (TypeError, ValueError):
        return None


def _text_of(part: Message) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", errors="replace")


def _safe_name(filename: str | None, ctype: str, index: int) -> str:
    if filename:
        name = re.sub(r"[\x00-\x1f/\\]", "_", filename).strip(". ") or f"attachment-{index + 1}"
        return name[:200]
    extension = {"application/pdf": ".pdf", "image/png": ".png", "image/jpeg": ".jpg"}
    return f"attachment-{index + 1}{extension.get(ctype, '.bin')}"


# -- HTML to text -----------------------------------------------------------------------------

_BLOCK = frozenset(
    {
        "p", "div", "br", "li", "ul", "ol", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6",
        "section", "article", "header", "footer", "blockquote", "pre", "hr", "address", "dl",
        "dt", "dd", "form", "fieldset", "nav", "aside", "main", "figure", "figcaption",
    }
)  # fmt: skip
_SKIP = frozenset({"script", "style", "head", "title", "template", "noscript"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping = 0
        self.pre = 0
        self.href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skipping += 1
        elif tag == "pre":
            self.pre += 1
        if tag in _BLOCK:
            self.out.append("\n")
        if tag == "li":
            self.out.append("- ")
        elif tag in ("td", "th"):
            self.out.append("\t")
        elif tag == "a":
            self.href = dict(attrs).get("href")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.out.append(alt)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in _BLOCK:
            self.out.append("\n")
        if tag == "a" and self.href and self.href.startswith(("http://", "https://")):
            self.out.append(f" ({self.href})")
            self.href = None

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        self.out.append(data if self.pre else re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """Readable text from HTML: blocks become lines, scripts and styles vanish, links keep
    their target. Not a renderer; good enough for rules, extraction and LLM prompts."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = [line.strip() for line in "".join(parser.out).splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
