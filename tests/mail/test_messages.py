"""Reading messages (pure): headers, text, HTML as text, attachments, and the malformed."""

from __future__ import annotations

import pytest

from faena.domain.mail import parse_watch
from faena.domain.mail_messages import MalformedMessage, html_to_text, parse_message
from tests.mail.servers import message


def test_headers_are_decoded_and_the_plain_text_is_kept() -> None:
    found = parse_message(
        b"From: =?utf-8?q?J=C3=B6rg?= <joerg@lieferant.example>\r\n"
        b"To: a@acme.example, B <b@acme.example>\r\nCc: c@acme.example\r\n"
        b"Subject: =?utf-8?q?Rechnung_f=C3=BCr_M=C3=A4rz?=\r\n"
        b"Date: Sun, 22 Nov 2026 06:00:00 +0100\r\nMessage-ID: <1@x>\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable"
        b"\r\n\r\nSumme: 12 =E2=82=AC\r\n"
    )
    assert found.subject == "Rechnung für März"
    assert found.sender == "joerg@lieferant.example"
    assert found.to == ["a@acme.example", "b@acme.example"] and found.cc == ["c@acme.example"]
    assert found.text == "Summe: 12 €"
    assert found.date == "2026-11-22T06:00:00+01:00"
    assert found.message_id == "<1@x>" and found.attachments == []
    assert found.rule_values()["from"] == "joerg@lieferant.example"


def test_an_html_only_message_is_read_as_text() -> None:
    raw = message("x", "", html="<p>Total: <b>900</b>&nbsp;EUR</p><ul><li>a</li><li>b</li></ul>")
    raw = raw.replace(b"Content-Type: text/plain", b"Content-Type: text/x-other", 1)
    found = parse_message(raw)
    assert "Total: 900 EUR" in found.text and "- a" in found.text
    assert found.html is not None and "<b>900</b>" in found.html


def test_attachments_keep_their_bytes_and_get_safe_names() -> None:
    raw = message(
        "x",
        "see attached",
        attachments=[
            ("../../etc/passwd", "application/octet-stream", b"\x00\x01"),
            ("invoice.pdf", "application/pdf", b"%PDF-1.4"),
        ],
    )
    found = parse_message(raw)
    assert [(a.filename, a.content_type, a.data) for a in found.attachments] == [
        ("_.._etc_passwd", "application/octet-stream", b"\x00\x01"),
        ("invoice.pdf", "application/pdf", b"%PDF-1.4"),
    ]


def test_html_to_text_drops_scripts_and_styles_and_keeps_links() -> None:
    text = html_to_text(
        "<html><head><title>t</title><style>p{color:red}</style></head><body>"
        "<h1>Hello</h1><p>Pay <a href='https://pay.example/1'>here</a></p>"
        "<script>alert(1)</script><table><tr><td>a</td><td>b</td></tr></table>"
        "<pre>  keep   spaces</pre></body></html>"
    )
    assert "alert" not in text and "color" not in text and text.startswith("Hello")
    assert "Hello" in text and "Pay here (https://pay.example/1)" in text
    assert "keep   spaces" in text  # inner spaces of <pre> kept


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"just some words\r\n", "no headers"),
        (b"Subject: x\r\n\r\nbody", "no valid From"),
        (
            b"From: a@b.example\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\nnothing",
            "broken MIME structure",
        ),
    ],
)
def test_a_malformed_message_says_why(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        parse_message(raw)


def test_a_watch_picks_the_first_matching_rule_else_its_default() -> None:
    watch = parse_watch(
        {
            "name": "w",
            "host": "h",
            "username": "u",
            "password_secret": "P",
            "workflow": "fallback",
            "rules": [
                {"match": {"from": r"@supplier\.example$", "subject": "invoice"}, "workflow": "a"},
                {"match": {"body": "urgent"}, "workflow": "b"},
            ],
        },
        tenant="t",
        watch_id="id",
        now=0.0,
    )
    values = {"from": "x@supplier.example", "subject": "Invoice 1", "body": "urgent", "to": ""}
    assert watch.pick_workflow(values) == "a"
    assert watch.pick_workflow({**values, "subject": "hello"}) == "b"
    assert watch.pick_workflow({"from": "", "subject": "", "body": "", "to": ""}) == "fallback"
    assert watch.port == 993 and watch.security == "ssl"
