"""Shared fixtures: store factories for every backend.

PostgreSQL tests use ``FAENA_TEST_POSTGRES_URL`` (default: the local ``test`` database). When it
cannot be reached they are skipped on a developer machine and **fail** under ``CI=true``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

POSTGRES_URL = os.environ.get(
    "FAENA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_service(name: str, error: BaseException) -> None:
    """Skip locally, fail in CI: a missing service must never hide a test in CI."""
    message = f"{name} is not reachable: {error}"
    if IN_CI:
        pytest.fail(message + " (CI=true: services are required)")
    pytest.skip(message)


StoreFactory = Callable[[], Any]
