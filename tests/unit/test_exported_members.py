"""The public API of ``faena`` is exactly this list; a change here is a deliberate decision."""

from __future__ import annotations

import faena

PUBLIC = {
    "ApiKeyInfo",
    "AsyncClient",
    "AsyncJobHandle",
    "Client",
    "Conflict",
    "FaenaError",
    "Forbidden",
    "Job",
    "JobHandle",
    "JobPage",
    "LogChunk",
    "NotFound",
    "PayloadTooLarge",
    "Unauthorized",
    "Unavailable",
    "ValidationError",
    "WaitTimeout",
    "Workflow",
    "__version__",
    "current_job",
    "task",
    "workflow",
}


def test_all_is_the_public_api() -> None:
    assert set(faena.__all__) == PUBLIC


def test_every_public_name_resolves() -> None:
    for name in faena.__all__:
        assert getattr(faena, name) is not None, name


def test_public_classes_say_they_are_faena_s() -> None:
    for name in faena.__all__:
        member = getattr(faena, name)
        if isinstance(member, type):
            assert member.__module__.startswith("faena."), name


def test_the_client_raises_the_server_s_error_classes() -> None:
    from faena.domain import errors

    assert faena.NotFound is errors.NotFound
    assert issubclass(faena.WaitTimeout, faena.FaenaError)
