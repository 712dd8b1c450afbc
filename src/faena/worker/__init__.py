"""The worker runtime: the task registry, the built-in kinds and the executor that runs a job.

It knows nothing of stores or servers: it is handed a job and reports what happened, so the local
pool of ``faena up`` and the remote agent of ``faena worker`` share it.

Names are imported on first use: ``import faena`` (for ``@faena.task``) must stay cheap, and
does not need asyncio, the process pool or httpx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faena.worker.context import JobContext, current_job
    from faena.worker.executor import ExecutionSink, Executor, KindDefaults, Outcome
    from faena.worker.kinds import BUILTIN_KINDS, validate_payload
    from faena.worker.outcome import PermanentError
    from faena.worker.registry import Task, TaskRegistry, default_registry, task

_WHERE = {
    "BUILTIN_KINDS": "faena.worker.kinds",
    "ExecutionSink": "faena.worker.executor",
    "Executor": "faena.worker.executor",
    "JobContext": "faena.worker.context",
    "KindDefaults": "faena.worker.executor",
    "Outcome": "faena.worker.executor",
    "PermanentError": "faena.worker.outcome",
    "Task": "faena.worker.registry",
    "TaskRegistry": "faena.worker.registry",
    "current_job": "faena.worker.context",
    "default_registry": "faena.worker.registry",
    "task": "faena.worker.registry",
    "validate_payload": "faena.worker.kinds",
}

__all__ = [
    "BUILTIN_KINDS",
    "ExecutionSink",
    "Executor",
    "JobContext",
    "KindDefaults",
    "Outcome",
    "PermanentError",
    "Task",
    "TaskRegistry",
    "current_job",
    "default_registry",
    "task",
    "validate_payload",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'faena.worker' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
