"""Sending once per job: ``email.send`` and the ``notify.*`` kinds record each completed send
in the store, keyed by the job and a *batch* (the kind and a digest of the recipients or the
endpoint), right after the server accepted it. A later attempt of the same job — its lease
expired after the send, the worker was killed before completing it, a retry — finds the
record and returns the recorded result (``already_sent: true``) instead of sending again.

What is left: a worker dying between the server's acceptance and the record (milliseconds).
For email that case is covered by the Message-ID, derived from the job and the batch
(:func:`message_id`), so receivers and mail clients that de-duplicate on it see one message.
A remote ``faena worker`` has no store: there only the Message-ID holds.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable

import structlog

from faena.domain.jobs import Job
from faena.domain.logs import LogStream
from faena.ports.executor import ExecutionSink
from faena.ports.mail import SendLedger, SentRecord
from faena.worker.outcome import Outcome, describe, failed

log = structlog.get_logger("faena.notify")


def digest(*parts: str) -> str:
    """A short stable digest of ``parts`` (order matters: sort sets first)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def batch_of(kind: str, targets: Iterable[str]) -> str:
    """The batch key of a send: ``kind`` and the digest of its (sorted) recipients or endpoint."""
    return f"{kind}:{digest(*sorted(targets))}"


def message_id(job_ids: Iterable[str], batch: str, domain: str) -> str:
    """A Message-ID derived from the job(s) and the batch: every attempt of a job sends the same
    one, so a receiver can tell a repeat from a new message."""
    ids = sorted(job_ids)
    local = ids[0] if len(ids) == 1 else "digest-" + digest(*ids)
    return f"<{local}.{digest(batch)[:8]}@{domain or 'faena.invalid'}>"


class Sends:
    """The ledger of completed sends (the store), as the kinds use it; ``None``: a worker
    without a store, where every attempt sends."""

    def __init__(self, ledger: SendLedger | None, clock: Callable[[], float] = time.time) -> None:
        self.ledger = ledger
        self.clock = clock

    async def recorded(self, job: Job, batch: str, sink: ExecutionSink) -> Outcome | None:
        """The outcome of an earlier attempt that sent already, or None (send now). A ledger
        that cannot be read fails the attempt: sending blind could send twice."""
        if self.ledger is None:
            return None
        try:
            found = await self.ledger.find_send(job.tenant, job.id, batch)
        except Exception as e:
            return failed(f"the record of earlier sends cannot be read: {describe(e)}")
        if found is None:
            return None
        sink.log(
            LogStream.STDOUT,
            f"already sent by attempt {found.attempt}; not sending again\n",
        )
        return Outcome(
            succeeded=True,
            result={**found.result, "already_sent": True, "sent_by_attempt": found.attempt},
        )

    async def record(self, job: Job, batch: str, outcome: Outcome) -> None:
        """Record a successful send (a failure to record is logged; the outcome stands)."""
        if self.ledger is None or not outcome.succeeded or not isinstance(outcome.result, dict):
            return
        try:
            await self.ledger.record_send(
                SentRecord(
                    tenant=job.tenant,
                    job_id=job.id,
                    batch=batch,
                    kind=job.kind,
                    attempt=job.attempts,
                    result=outcome.result,
                    sent_at=self.clock(),
                )
            )
        except Exception as e:
            log.warning("send not recorded", job_id=job.id, batch=batch, error=describe(e))
