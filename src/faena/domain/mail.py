"""Mailbox watches: what a watch is, how its definition is checked, and how a message picks the
workflow it starts. Pure: the IMAP conversation lives in an adapter, the loop in a service.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from faena.domain.errors import ValidationError
from faena.domain.mail_classify import LlmClassify, parse_classify

SECURITY_MODES = ("ssl", "starttls", "none")
ACTIONS = ("flag", "move")
DEFAULT_FLAG = "\\Seen"
DONE_KEYWORD = "$FaenaDone"  # set with the action, so a watch can tell its own work apart
PARKED_KEYWORD = "$FaenaParked"
MAX_RULES = 50
MAX_PATTERN = 500
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_FLAG = re.compile(r"^\\?[A-Za-z$][A-Za-z0-9_$.-]{0,63}$")
_FOLDER_BAD = re.compile(r"[\x00-\x1f\"\\*%]")
RULE_FIELDS = ("from", "to", "subject", "body")


@dataclass(frozen=True, slots=True)
class MailRule:
    """Every pattern given must match (case-insensitive regular expressions, searched); the
    first rule that matches picks ``workflow``."""

    workflow: str
    patterns: dict[str, str] = field(default_factory=dict)

    def matches(self, values: Mapping[str, str]) -> bool:
        return all(
            re.search(pattern, values.get(name, ""), re.IGNORECASE) is not None
            for name, pattern in self.patterns.items()
        )

    def to_dict(self) -> dict[str, Any]:
        return {"match": dict(self.patterns), "workflow": self.workflow}


@dataclass(frozen=True, slots=True)
class MailWatch:
    """One tenant's watch of one IMAP folder. ``uidvalidity``/``last_uid`` are how far it has
    read; ``lease_owner``/``lease_until`` say which server runs it right now."""

    id: str
    tenant: str
    name: str
    host: str
    port: int
    username: str
    password_secret: str
    security: str = "ssl"
    folder: str = "INBOX"
    workflow: str | None = None  # when no rule matches; None: such messages are skipped
    rules: tuple[MailRule, ...] = ()
    classify: LlmClassify | None = None  # when no rule matches: ask the tenant's LLM
    action: str = "flag"  # after a message is handled: flag it, or move it to move_to
    flag: str = DEFAULT_FLAG
    move_to: str | None = None
    park_folder: str | None = None  # malformed messages go here (else they are only flagged)
    poll_s: float = 30.0
    idle: bool = True  # use IMAP IDLE when the server supports it
    tls_verify: bool = True
    ca_file: str | None = None
    created_at: float = 0.0
    uidvalidity: int | None = None
    last_uid: int = 0
    lease_owner: str | None = None
    lease_until: float = 0.0
    last_error: str | None = None
    last_polled_at: float | None = None
    processed: int = 0
    parked: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The watch as the API shows it (no password: only the secret's name)."""
        return {
            "id": self.id,
            "name": self.name,
            "host": self.host,
            "port": self.port,
            "security": self.security,
            "username": self.username,
            "password_secret": self.password_secret,
            "folder": self.folder,
            "workflow": self.workflow,
            "rules": [r.to_dict() for r in self.rules],
            "classify": self.classify.to_dict() if self.classify else None,
            "action": self.action,
            "flag": self.flag,
            "move_to": self.move_to,
            "park_folder": self.park_folder,
            "poll_s": self.poll_s,
            "idle": self.idle,
            "tls_verify": self.tls_verify,
            "ca_file": self.ca_file,
            "created_at": self.created_at,
            "state": {
                "uidvalidity": self.uidvalidity,
                "last_uid": self.last_uid,
                "leader": self.lease_owner,
                "lease_until": self.lease_until,
                "last_error": self.last_error,
                "last_polled_at": self.last_polled_at,
                "processed": self.processed,
                "parked": self.parked,
            },
        }

    def spec(self) -> dict[str, Any]:
        """The definition fields only, as stored."""
        found = self.to_dict()
        for key in ("id", "name", "created_at", "state"):
            found.pop(key)
        return found

    def pick_workflow(self, values: Mapping[str, str]) -> str | None:
        for rule in self.rules:
            if rule.matches(values):
                return rule.workflow
        return self.workflow

    def rule_for(self, values: Mapping[str, str]) -> int | None:
        """The index of the first rule that matches, or None (the LLM or the default
        decides)."""
        return next((i for i, rule in enumerate(self.rules) if rule.matches(values)), None)

    def workflows(self) -> set[str]:
        """Every workflow this watch may start."""
        found = {r.workflow for r in self.rules}
        if self.workflow is not None:
            found.add(self.workflow)
        if self.classify is not None:
            found.update(self.classify.labels.values())
        return found


@dataclass(frozen=True, slots=True)
class MailMessageRecord:
    """What became of one message: ``ingested`` (a run started), ``parked`` (malformed, with
    the reason) or ``skipped`` (no rule and no default workflow)."""

    watch_id: str
    uidvalidity: int
    uid: int
    state: str
    at: float
    run_id: str | None = None
    reason: str | None = None
    message_id: str | None = None
    subject: str | None = None
    tenant: str = ""  # the watch's (given when recording: saves the store a lookup)
    # How the workflow was picked: {"by": "rule" | "llm" | "default", "workflow", ...}
    classification: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "uidvalidity": self.uidvalidity,
            "uid": self.uid,
            "state": self.state,
            "at": self.at,
            "run_id": self.run_id,
            "reason": self.reason,
            "message_id": self.message_id,
            "subject": self.subject,
            "classification": self.classification,
        }


def run_key(watch_id: str, uidvalidity: int, uid: int) -> str:
    """The run idempotency key of a message: one run per message, whoever starts it."""
    return f"mail:{watch_id}:{uidvalidity}:{uid}"


def parse_watch(doc: Any, *, tenant: str, watch_id: str, now: float) -> MailWatch:
    """A watch from its JSON definition; ValidationError names the field that is wrong."""
    if not isinstance(doc, dict):
        raise ValidationError("a mail watch must be a JSON object")
    allowed = {
        "name",
        "host",
        "port",
        "security",
        "username",
        "password_secret",
        "folder",
        "workflow",
        "rules",
        "classify",
        "action",
        "flag",
        "move_to",
        "park_folder",
        "poll_s",
        "idle",
        "tls_verify",
        "ca_file",
    }
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise ValidationError(
            f"unknown field {unknown[0]!r}; expected {', '.join(sorted(allowed))}"
        )
    name = _text(doc, "name", required=True)
    if not _NAME.match(name):
        raise ValidationError(
            "'name' must be 1-64 letters, digits, '_', '.', '-', starting with a letter or digit"
        )
    host = _text(doc, "host", required=True)
    if any(c.isspace() for c in host) or "/" in host:
        raise ValidationError("'host' must be a host name or address, without scheme or path")
    security = _text(doc, "security") or "ssl"
    if security not in SECURITY_MODES:
        raise ValidationError(f"'security' must be one of {', '.join(SECURITY_MODES)}")
    port = doc.get("port", 993 if security == "ssl" else 143)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValidationError("'port' must be an integer between 1 and 65535")
    password_secret = _text(doc, "password_secret", required=True)
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$", password_secret):
        raise ValidationError("'password_secret' must be a secret name (letters, digits, '_')")
    action = _text(doc, "action") or "flag"
    if action not in ACTIONS:
        raise ValidationError(f"'action' must be one of {', '.join(ACTIONS)}")
    move_to = _folder(doc, "move_to")
    if action == "move" and move_to is None:
        raise ValidationError("'move_to' is required when 'action' is 'move'")
    flag = _text(doc, "flag") or DEFAULT_FLAG
    if not _FLAG.match(flag):
        raise ValidationError("'flag' must be a system flag like \\Seen or a keyword like $Done")
    poll_s = doc.get("poll_s", 30.0)
    if (
        isinstance(poll_s, bool)
        or not isinstance(poll_s, int | float)
        or not 0.05 <= poll_s <= 3600
    ):
        raise ValidationError("'poll_s' must be a number of seconds between 0.05 and 3600")
    workflow = _text(doc, "workflow")
    rules = _rules(doc.get("rules"))
    classify = parse_classify(doc.get("classify"))
    if workflow is None and not rules and classify is None:
        raise ValidationError("give a 'workflow' to start, or 'rules' or 'classify' that pick one")
    return MailWatch(
        id=watch_id,
        tenant=tenant,
        name=name,
        host=host,
        port=port,
        username=_text(doc, "username", required=True),
        password_secret=password_secret,
        security=security,
        folder=_folder(doc, "folder") or "INBOX",
        workflow=workflow,
        rules=rules,
        classify=classify,
        action=action,
        flag=flag,
        move_to=move_to,
        park_folder=_folder(doc, "park_folder"),
        poll_s=float(poll_s),
        idle=_flag(doc, "idle", default=True),
        tls_verify=_flag(doc, "tls_verify", default=True),
        ca_file=_text(doc, "ca_file"),
        created_at=now,
    )


def watch_from_spec(spec: Mapping[str, Any], **stored: Any) -> MailWatch:
    """Rebuild a stored watch: its definition (as :meth:`MailWatch.spec`) and state columns."""
    rules = tuple(
        MailRule(workflow=r["workflow"], patterns=dict(r["match"])) for r in spec.get("rules", [])
    )
    classify = parse_classify(spec.get("classify"))
    fields = {k: v for k, v in spec.items() if k not in ("rules", "classify")}
    return MailWatch(rules=rules, classify=classify, **fields, **stored)


def with_state(watch: MailWatch, **changes: Any) -> MailWatch:
    return replace(watch, **changes)


def _rules(value: Any) -> tuple[MailRule, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_RULES:
        raise ValidationError(f"'rules' must be a list of at most {MAX_RULES} rules")
    rules = []
    for i, rule in enumerate(value):
        where = f"rules[{i}]"
        if not isinstance(rule, dict) or set(rule) - {"match", "workflow"}:
            raise ValidationError(f"{where} must be an object with 'match' and 'workflow'")
        workflow = rule.get("workflow")
        if not isinstance(workflow, str) or not workflow:
            raise ValidationError(f"{where}.workflow must be a workflow name")
        match = rule.get("match", {})
        if not isinstance(match, dict) or set(match) - set(RULE_FIELDS):
            raise ValidationError(f"{where}.match must map some of {', '.join(RULE_FIELDS)}")
        for key, pattern in match.items():
            if not isinstance(pattern, str) or not 0 < len(pattern) <= MAX_PATTERN:
                raise ValidationError(f"{where}.match.{key} must be a non-empty pattern")
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValidationError(f"{where}.match.{key} is not a valid pattern: {e}") from None
        rules.append(MailRule(workflow=workflow, patterns=dict(match)))
    return tuple(rules)


def _text(doc: Mapping[str, Any], name: str, *, required: bool = False) -> Any:
    value = doc.get(name)
    if value is None:
        if required:
            raise ValidationError(f"{name!r} is required")
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 1000:
        raise ValidationError(f"{name!r} must be a non-empty string")
    return value


def _folder(doc: Mapping[str, Any], name: str) -> str | None:
    value: str | None = _text(doc, name)
    if value is not None and _FOLDER_BAD.search(value):
        raise ValidationError(f"{name!r} must be a folder name without quotes, '\\', '*' or '%'")
    return value


def _flag(doc: Mapping[str, Any], name: str, *, default: bool) -> bool:
    value = doc.get(name, default)
    if not isinstance(value, bool):
        raise ValidationError(f"{name!r} must be true or false")
    return value
