"""faena: durable jobs and workflows for Python teams.

The public API is what ``__all__`` lists (pinned by ``tests/unit/test_exported_members.py``);
everything else is internal and may change. The client side is imported on first use, so a
worker that only needs ``@faena.task`` does not load httpx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faena.domain.errors import (
    Conflict,
    FaenaError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
    ValidationError,
)
from faena.worker.registry import task

if TYPE_CHECKING:
    from faena.client import (
        ApiKeyInfo,
        AsyncClient,
        AsyncJobHandle,
        Client,
        Job,
        JobHandle,
        JobPage,
        LogChunk,
        WaitTimeout,
    )
    from faena.worker.context import current_job
    from faena.workflow_builder import Workflow, workflow

__version__ = "0.1.0"

__all__ = [
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
]

_LAZY = {
    "ApiKeyInfo": "faena.client",
    "AsyncClient": "faena.client",
    "AsyncJobHandle": "faena.client",
    "Client": "faena.client",
    "Job": "faena.client",
    "JobHandle": "faena.client",
    "JobPage": "faena.client",
    "LogChunk": "faena.client",
    "WaitTimeout": "faena.client",
    "current_job": "faena.worker.context",
    "Workflow": "faena.workflow_builder",
    "workflow": "faena.workflow_builder",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'faena' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
