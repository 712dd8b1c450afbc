"""Rows of the mail tables → domain objects, shared by the SQL adapters (both index rows by
position; each adapter selects the columns in this order)."""

from __future__ import annotations

from typing import Any

import orjson

from faena.domain.mail import MailMessageRecord, MailWatch, watch_from_spec
from faena.ports.mail import SentRecord

WATCH_COLUMNS = (
    "id, tenant, name, spec, created_at, uidvalidity, last_uid, lease_owner, lease_until, "
    "last_error, last_polled_at, processed, parked"
)
MESSAGE_COLUMNS = (
    "watch_id, uidvalidity, uid, state, at, run_id, reason, message_id, subject, classification"
)


def watch(r: Any) -> MailWatch:
    return watch_from_spec(
        orjson.loads(r[3]),
        id=r[0],
        tenant=r[1],
        name=r[2],
        created_at=r[4],
        uidvalidity=r[5],
        last_uid=r[6],
        lease_owner=r[7],
        lease_until=r[8],
        last_error=r[9],
        last_polled_at=r[10],
        processed=r[11],
        parked=r[12],
    )


def message(r: Any) -> MailMessageRecord:
    classification = None if r[9] is None else orjson.loads(r[9])
    return MailMessageRecord(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], classification=classification
    )


def spec_json(w: MailWatch) -> str:
    return orjson.dumps(w.spec()).decode()


def message_values(m: MailMessageRecord, tenant: str) -> tuple[Any, ...]:
    return (
        m.watch_id, m.uidvalidity, m.uid, tenant, m.state, m.at, m.run_id, m.reason,
        m.message_id, m.subject, classification_json(m),
    )  # fmt: skip


def classification_json(m: MailMessageRecord) -> str | None:
    return None if m.classification is None else orjson.dumps(m.classification).decode()


SEND_COLUMNS = "tenant, job_id, batch, kind, attempt, result, sent_at"


def send(r: Any) -> SentRecord:
    return SentRecord(r[0], r[1], r[2], r[3], int(r[4]), orjson.loads(r[5]), float(r[6]))


def send_values(s: SentRecord) -> tuple[Any, ...]:
    result = orjson.dumps(s.result).decode()
    return (s.tenant, s.job_id, s.batch, s.kind, s.attempt, result, s.sent_at)
