"""The document kinds' options, page ranges and cache key: pure functions, no I/O.

``document.text`` reads a PDF's text layer and OCRs the pages that have none (``ocr: auto``);
``ocr`` reads every page (or image) with Tesseract. Both take one input — ``artefact`` (an id),
``url`` or ``data_b64`` — and options ``pages`` ("1-3,5"), ``lang`` ("eng", "eng+deu"), ``ocr``
(auto | always | never, document.text only) and ``dpi`` (rendering of PDF pages for OCR).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from faena.domain.artefacts import is_artefact_id
from faena.domain.errors import ValidationError

KIND_TEXT = "document.text"
KIND_OCR = "ocr"
KINDS = (KIND_TEXT, KIND_OCR)
OCR_MODES = ("auto", "always", "never")
MAX_PAGES = 10_000
MAX_DATA_B64 = 14 * 1024 * 1024  # ~10 MB decoded: larger documents go as artefacts or URLs
DEFAULT_DPI = 300
# Bumped when the extraction changes what it returns, so cached results of older code are
# not served for new requests.
RESULT_VERSION = 1
_LANG = re.compile(r"^[A-Za-z_]{3,20}(\+[A-Za-z_]{3,20}){0,4}$")
_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
_FIELDS = frozenset({"artefact", "url", "data_b64", "pages", "lang", "ocr", "dpi"})


@dataclass(frozen=True, slots=True)
class DocumentOptions:
    """What shapes a result (and so its cache key). ``pages`` None: every page."""

    pages: tuple[int, ...] | None = None
    lang: str = "eng"
    ocr: str = "auto"
    dpi: int = DEFAULT_DPI

    def to_dict(self) -> dict[str, Any]:
        return {"pages": self.pages, "lang": self.lang, "ocr": self.ocr, "dpi": self.dpi}

    def digest(self, kind: str) -> str:
        """A short, stable digest of the options for the cache key."""
        raw = orjson.dumps(
            {"v": RESULT_VERSION, "kind": kind, **self.to_dict()}, option=orjson.OPT_SORT_KEYS
        )
        return hashlib.sha256(raw).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class DocumentRequest:
    """A validated payload: exactly one input, and the options."""

    kind: str
    options: DocumentOptions
    artefact: str | None = None
    url: str | None = None
    data_b64: str | None = None


def parse_pages(spec: str | int | None) -> tuple[int, ...] | None:
    """``"1-3,5"`` → ``(1, 2, 3, 5)`` (1-based, sorted, unique); None or "" → every page."""
    if spec is None or spec == "":
        return None
    if isinstance(spec, bool):
        raise ValidationError("pages must be a string such as '1-3,5'")
    if isinstance(spec, int):
        spec = str(spec)
    if not isinstance(spec, str) or len(spec) > 1000:
        raise ValidationError("pages must be a string such as '1-3,5'")
    found: set[int] = set()
    for part in spec.split(","):
        m = _RANGE.match(part)
        if m is None:
            raise ValidationError(
                f"bad page range {part.strip()!r}: expected N or N-M, e.g. '1-3,5'"
            )
        first = int(m.group(1))
        last = int(m.group(2) or first)
        if first < 1 or last < first:
            raise ValidationError(f"bad page range {part.strip()!r}: pages count from 1, N <= M")
        if last > MAX_PAGES or len(found) + (last - first + 1) > MAX_PAGES:
            raise ValidationError(f"page ranges cover more than {MAX_PAGES} pages")
        found.update(range(first, last + 1))
    return tuple(sorted(found))


def parse_request(kind: str, payload: Any) -> DocumentRequest:
    """Validate a ``document.text`` or ``ocr`` payload (at submit, and again at run)."""
    if kind not in KINDS:
        raise ValidationError(f"not a document kind: {kind!r}")
    if not isinstance(payload, dict):
        raise ValidationError(f"a {kind} payload is an object with artefact, url or data_b64")
    unknown = set(payload) - _FIELDS
    if unknown:
        raise ValidationError(f"unknown {kind} field(s): {', '.join(sorted(unknown))}")
    given = [k for k in ("artefact", "url", "data_b64") if payload.get(k) is not None]
    if len(given) != 1:
        raise ValidationError(f"a {kind} payload needs exactly one of artefact, url or data_b64")
    artefact = payload.get("artefact")
    if artefact is not None and not is_artefact_id(artefact):
        raise ValidationError("artefact must be an artefact id (from POST /v1/artefacts)")
    url = payload.get("url")
    if url is not None and (
        not isinstance(url, str) or not re.match(r"^https?://[^\s]+$", url) or len(url) > 4096
    ):
        raise ValidationError("url must be an http:// or https:// URL")
    data = payload.get("data_b64")
    if data is not None and (not isinstance(data, str) or not data):
        raise ValidationError("data_b64 must be a non-empty base64 string")
    if data is not None and len(data) > MAX_DATA_B64:
        raise ValidationError(
            f"data_b64 is longer than {MAX_DATA_B64} characters: upload the file as an artefact"
        )
    lang = payload.get("lang", "eng")
    if not isinstance(lang, str) or not _LANG.match(lang):
        raise ValidationError("lang must be Tesseract language codes such as 'eng' or 'eng+deu'")
    ocr = payload.get("ocr", "always" if kind == KIND_OCR else "auto")
    if ocr not in OCR_MODES:
        raise ValidationError(f"ocr must be one of {', '.join(OCR_MODES)}")
    if kind == KIND_OCR and ocr != "always":
        raise ValidationError("the ocr kind always reads with OCR; use document.text for 'ocr'")
    dpi = payload.get("dpi", DEFAULT_DPI)
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not 72 <= dpi <= 600:
        raise ValidationError("dpi must be an integer between 72 and 600")
    return DocumentRequest(
        kind=kind,
        options=DocumentOptions(pages=parse_pages(payload.get("pages")), lang=lang, ocr=ocr,
                                dpi=dpi),
        artefact=artefact,
        url=url,
        data_b64=data,
    )  # fmt: skip


def char_accuracy(expected: str, got: str) -> float:
    """1 - (Levenshtein distance / len(expected)) on whitespace-normalised text, floored at 0:
    the usual character accuracy of OCR evaluations."""
    a = " ".join(expected.split())
    b = " ".join(got.split())
    if not a:
        return 1.0 if not b else 0.0
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return max(0.0, 1.0 - previous[-1] / len(a))
