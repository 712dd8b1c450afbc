"""Guardrails of the LLM layer, pure: PII detection and redaction, prompt-injection heuristics,
output checks. Each returns a :class:`Verdict` that is recorded on the job.

PII: e-mail addresses, phone numbers (7-15 digits, international or grouped), IBANs (checked
with ISO 13616 mod-97), payment card numbers (13-19 digits checked with Luhn) and configurable
national ids (named regular expressions). Numbers that fail their checksum are not PII, which is
what keeps order numbers and timestamps from being redacted.

Injection: weighted patterns of the known attack families (override of instructions, role
hijack, system-prompt extraction, fake delimiters, jailbreak personas, encoded payloads); the
score is the sum of the matched weights, capped at 1. A pluggable classifier may replace it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema

# -- verdicts ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """``action``: ``pass``, ``redacted``, ``flagged`` (recorded, not blocking) or ``blocked``."""

    name: str
    action: str
    detail: str = ""
    score: float | None = None
    findings: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "verdict": self.action}
        if self.detail:
            doc["detail"] = self.detail
        if self.score is not None:
            doc["score"] = round(self.score, 3)
        if self.findings:
            doc["findings"] = dict(self.findings)
        return doc


# -- PII ---------------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"(?<![\d+-])(?:\d[ -]?){12,18}\d(?![\d-])")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}(?![\w-])"
    r"|(?<![\w+])\+\d{8,14}(?!\w)"
)
_DATE_LIKE = re.compile(r"^(19|20)\d\d[-./]|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")

# Configurable national ids: name → pattern. The defaults are formats that rarely collide with
# other numbers; a tenant adds its own (``FAENA_LLM_PII_NATIONAL_IDS``).
DEFAULT_NATIONAL_IDS: dict[str, str] = {
    "us_ssn": r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b",
    "es_dni": r"\b\d{8}-?[TRWAGMYFPDXBNJZSQVHLCKE]\b",
    "uk_nino": r"\b[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b",
}
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a card number (digits only)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to numbers, mod 97 == 1."""
    s = iban.replace(" ", "").upper()
    if not 15 <= len(s) <= 34 or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    moved = s[4:] + s[:4]
    number = "".join(str(int(ch, 36)) for ch in moved)
    return int(number) % 97 == 1


def _dni_ok(value: str) -> bool:
    digits, letter = value[:8], value[-1]
    return digits.isdigit() and _DNI_LETTERS[int(digits) % 23] == letter


@dataclass(frozen=True, slots=True)
class PiiSpan:
    kind: str
    start: int
    end: int
    text: str


class PiiDetector:
    """Finds PII spans; ``national_ids`` maps a name to a regular expression."""

    def __init__(self, national_ids: Mapping[str, str] | None = None) -> None:
        ids = DEFAULT_NATIONAL_IDS if national_ids is None else national_ids
        self._ids = [(name, re.compile(p)) for name, p in ids.items()]

    def find(self, text: str) -> list[PiiSpan]:
        spans: list[PiiSpan] = []
        taken: list[tuple[int, int]] = []

        def add(kind: str, m: re.Match[str]) -> None:
            s, e = m.span()
            if any(s < te and ts < e for ts, te in taken):
                return
            taken.append((s, e))
            spans.append(PiiSpan(kind, s, e, m.group()))

        for m in _EMAIL.finditer(text):
            add("email", m)
        for m in _IBAN.finditer(text):
            if iban_ok(m.group()):
                add("iban", m)
        for m in _CARD.finditer(text):
            digits = re.sub(r"\D", "", m.group())
            if 13 <= len(digits) <= 19 and luhn_ok(digits):
                add("card", m)
        for name, pattern in self._ids:
            for m in pattern.finditer(text):
                if name == "es_dni" and not _dni_ok(m.group().replace("-", "")):
                    continue
                add(name, m)
        for m in _PHONE.finditer(text):
            digits = re.sub(r"\D", "", m.group())
            if 7 <= len(digits) <= 15 and not _DATE_LIKE.match(m.group()):
                add("phone", m)
        spans.sort(key=lambda s: s.start)
        return spans

    def redact(self, text: str) -> tuple[str, dict[str, int]]:
        """The text with each span replaced by ``[KIND]``, and the count of each kind."""
        spans = self.find(text)
        if not spans:
            return text, {}
        out: list[str] = []
        counts: dict[str, int] = {}
        last = 0
        for span in spans:
            out.append(text[last : span.start])
            out.append(f"[{span.kind.upper()}]")
            counts[span.kind] = counts.get(span.kind, 0) + 1
            last = span.end
        out.append(text[last:])
        return "".join(out), counts


# -- prompt injection --------------------------------------------------------------------------

_I = re.IGNORECASE
INJECTION_PATTERNS: tuple[tuple[str, float, re.Pattern[str]], ...] = (
    (
        "override",
        0.6,
        re.compile(
            r"\b(ignore|disregard|forget|skip|override|bypass)\b[^.\n]{0,40}\b(previous|prior|"
            r"above|earlier|all|any|your|the|system|these)\b[^.\n]{0,30}\b(instructions?|"
            r"prompts?|rules?|directions?|directives?|guidelines?|context|constraints?|policies)",
            _I,
        ),
    ),
    (
        "new_instructions",
        0.5,
        re.compile(r"\b(new|updated|real|actual|following)\s+(instructions?|rules|task)\s*:", _I),
    ),
    (
        "prompt_extraction",
        0.6,
        re.compile(
            r"\b(reveal|print|show|repeat|output|display|leak|tell me|what (is|are)|give me)\b"
            r"[^.\n]{0,30}\b(system|initial|original|hidden|secret|developer)\s+"
            r"(prompt|instructions?|message|rules)",
            _I,
        ),
    ),
    (
        "role_hijack",
        0.5,
        re.compile(
            r"\b(you are now|from now on,? you|act as (an? )?(unfiltered|unrestricted|evil|"
            r"jailbroken|different)|pretend (to be|you are|that you)|roleplay as|you will now)\b",
            _I,
        ),
    ),
    (
        "jailbreak_persona",
        0.6,
        re.compile(
            r"\b(DAN|do anything now|jailbreak|jailbroken|god mode|no restrictions|without "
            r"(any )?(restrictions|filters|limits|censorship)|(enable|activate|enter|in) "
            r"developer mode)\b",
            _I,
        ),
    ),
    (
        "fake_delimiter",
        0.5,
        re.compile(
            r"(</?(system|assistant|instructions?|im_start|im_end)>|<\|im_(start|end)\|>|"
            r"\[/?INST\]|^\s*#{2,}\s*(system|instruction)|^\s*(system|assistant)\s*:)",
            _I | re.MULTILINE,
        ),
    ),
    (
        "exfiltration",
        0.5,
        re.compile(
            r"\b(send|post|forward|upload|exfiltrate|email)\b[^.\n]{0,40}\b(api keys?|passwords?|"
            r"credentials|secrets?|tokens?|conversation|this data)\b[^.\n]{0,30}\b(to|at)\b",
            _I,
        ),
    ),
    (
        "encoded_instructions",
        0.5,
        re.compile(
            r"\b(decode|base64|rot13)\b[^.\n]{0,40}\b(follow|execute|obey|run|do what)\b", _I
        ),
    ),
    ("encoded_blob", 0.3, re.compile(r"[A-Za-z0-9+/]{60,}={0,2}")),
    (
        "safety_off",
        0.5,
        re.compile(
            r"\b(disable|turn off|deactivate|remove|bypass|ignore)\b[^.\n]{0,20}\b(safety|"
            r"filters?|guardrails?|content policy|moderation)\b",
            _I,
        ),
    ),
)
INJECTION_THRESHOLD = 0.5


def injection_score(text: str) -> tuple[float, list[str]]:
    """The heuristic score in [0, 1] and the names of the matched families."""
    matched = [name for name, _, p in INJECTION_PATTERNS if p.search(text)]
    weights = {name: w for name, w, _ in INJECTION_PATTERNS}
    return min(1.0, sum(weights[n] for n in matched)), matched


# -- outputs -----------------------------------------------------------------------------------


def check_schema(schema: Mapping[str, Any]) -> str | None:
    """None if ``schema`` is a valid JSON Schema, else why not."""
    try:
        jsonschema.Draft202012Validator.check_schema(dict(schema))
    except jsonschema.SchemaError as e:
        return f"response_schema is not a valid JSON Schema: {e.message}"
    return None


def schema_errors(schema: Mapping[str, Any], value: Any, limit: int = 3) -> list[str]:
    """The first few reasons ``value`` does not match ``schema`` (empty: it matches)."""
    validator = jsonschema.Draft202012Validator(dict(schema))
    found: list[str] = []
    for err in validator.iter_errors(value):
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        found.append(f"{where}: {err.message}")
        if len(found) >= limit:
            break
    return found


def extract_json(text: str) -> Any:
    """The JSON value of an answer, tolerating a Markdown code fence around it. Raises
    ValueError when there is none."""
    import orjson

    s = text.strip()
    if s.startswith("```"):
        s = s.split("\n", 1)[1] if "\n" in s else ""
        s = s.rsplit("```", 1)[0]
    try:
        return orjson.loads(s)
    except orjson.JSONDecodeError:
        start = min((i for i in (s.find("{"), s.find("[")) if i >= 0), default=-1)
        end = max(s.rfind("}"), s.rfind("]"))
        if start >= 0 and end > start:
            try:
                return orjson.loads(s[start : end + 1])
            except orjson.JSONDecodeError:
                pass
    raise ValueError("the answer is not JSON")


def texts_of(contents: Sequence[str | None]) -> str:
    return "\n".join(c for c in contents if c)
