"""The invoice-intake example's own step: find the total and the due date in an invoice's text.

Run the server with ``--import invoice_tasks`` (from this folder) so the local pool serves it.
Plain regular expressions, good for the common layouts ("Total due 1,234.56 EUR",
"Amount: EUR 980.00", "Due date: 2026-12-15", "due by 30 November 2026"); swap in an ``llm``
step for anything harder.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import faena

_AMOUNT = r"(?P<amount>\d{1,3}(?:[,.\s]\d{3})*(?:[.,]\d{2})?|\d+(?:[.,]\d{2})?)"
_TOTAL = re.compile(
    r"(?:total(?:\s+due)?|amount\s+due|balance\s+due|amount)\s*:?\s*"
    r"(?P<before>EUR|USD|GBP|€|\$|£)?\s*" + _AMOUNT + r"\s*(?P<after>EUR|USD|GBP|€|\$|£)?",
    re.IGNORECASE,
)
_DUE = re.compile(
    r"(?:due(?:\s+date)?|pay(?:able)?\s+by|due\s+by)\s*(?:on|by)?\s*:?\s*"
    r"(?P<date>\d{4}-\d{2}-\d{2}|\d{1,2}[/.]\d{1,2}[/.]\d{4}|\d{1,2}\s+[A-Za-z]+\s+\d{4})",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"invoice\s*(?:no\.?|number|#)?\s*:?\s*(?P<number>[A-Z0-9][\w/-]{2,})", re.I)
_SYMBOLS = {"€": "EUR", "$": "USD", "£": "GBP"}


def parse_amount(text: str) -> float:
    """``1,234.56`` / ``1.234,56`` / ``1 234,56`` / ``980`` → a float."""
    text = text.replace(" ", "")
    if re.search(r",\d{2}$", text):  # decimal comma
        text = text.replace(".", "").replace(",", ".")
    else:
        text = text.replace(",", "")
    return float(text)


def parse_date(text: str) -> str | None:
    for fmt in ("%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%d %B %Y", "%d %b %Y"):
        try:
            return dt.datetime.strptime(text.strip(), fmt).date().isoformat()
        except ValueError:
            continue
    return None


def extract(text: str) -> dict[str, Any]:
    """The invoice's total, currency, due date and number (None where not found)."""
    found: dict[str, Any] = {"total": None, "currency": None, "due_date": None, "number": None}
    m = _TOTAL.search(text)
    if m:
        found["total"] = parse_amount(m.group("amount"))
        currency = m.group("before") or m.group("after")
        found["currency"] = _SYMBOLS.get(currency, currency.upper()) if currency else None
    m = _DUE.search(text)
    if m:
        found["due_date"] = parse_date(m.group("date"))
    m = _NUMBER.search(text)
    if m:
        found["number"] = m.group("number")
    return found


@faena.task(timeout=30)
async def extract_invoice(text: str) -> dict[str, Any]:
    """The step: fails the run with a clear reason when the document has no total."""
    found = extract(text)
    if found["total"] is None:
        raise ValueError("no total found in the document's text")
    return found
