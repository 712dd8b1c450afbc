"""Worker credentials: signed, short-lived, bound to their token."""

from __future__ import annotations

import pytest

from faena.domain.errors import Unauthorized
from faena.domain.worker_auth import (
    credential_token_id,
    hash_token,
    sign_credential,
    verify_credential,
)

HASH = hash_token("fw_token")


def test_a_signed_credential_verifies_until_it_expires() -> None:
    cred = sign_credential("t1", HASH, now=1000.0, ttl_s=900)
    assert credential_token_id(cred.text) == "t1"
    assert verify_credential(cred.text, HASH, now=1899.0).token_id == "t1"
    with pytest.raises(Unauthorized, match="expired"):
        verify_credential(cred.text, HASH, now=1900.0)


def test_a_credential_of_another_token_or_tampered_is_refused() -> None:
    cred = sign_credential("t1", HASH, now=1000.0, ttl_s=900)
    with pytest.raises(Unauthorized, match="signature"):
        verify_credential(cred.text, hash_token("fw_other"), now=1000.0)
    forged = cred.text.replace(".1900.", ".9999.")
    with pytest.raises(Unauthorized):
        verify_credential(forged, HASH, now=1000.0)
    with pytest.raises(Unauthorized, match="malformed"):
        credential_token_id("garbage")
