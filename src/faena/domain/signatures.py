"""HMAC-SHA256 signatures of webhook bodies, inbound and outbound.

The signed message is ``f"{timestamp}.".encode() + body``; the header is
``X-Faena-Signature: v1=<hex digest>`` next to ``X-Faena-Timestamp: <unix seconds>``. A receiver
recomputes the digest with the shared secret, compares in constant time, and refuses timestamps
more than five minutes away from its clock (replays).
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Faena-Signature"
TIMESTAMP_HEADER = "X-Faena-Timestamp"
EVENT_ID_HEADER = "X-Faena-Event-Id"
EVENT_TYPE_HEADER = "X-Faena-Event-Type"
TOLERANCE_S = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + digest.hexdigest()


def verify(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float
) -> str | None:
    """None when the signature is valid and fresh, else the reason it is not."""
    if not timestamp or not signature:
        return f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header"
    try:
        ts = int(timestamp)
    except ValueError:
        return f"{TIMESTAMP_HEADER} must be an integer (unix seconds)"
    if abs(now - ts) > TOLERANCE_S:
        return f"{TIMESTAMP_HEADER} is more than {TOLERANCE_S} seconds away from the server's clock"
    expected = sign(secret, ts, body)
    candidates = [s.strip() for s in signature.split(",")]
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        return "the signature does not match"
    return None
