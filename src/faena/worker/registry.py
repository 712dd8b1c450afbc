"""``@faena.task``: register Python functions as kinds."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from faena.domain.errors import ValidationError
from faena.worker.kinds import BUILTIN_KINDS

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Task:
    """A registered function. ``retries``/``timeout``/``queue`` are the defaults of its jobs."""

    name: str
    fn: Callable[..., Any]
    is_async: bool
    cpu: bool
    max_attempts: int | None
    timeout_s: float | None
    queue: str | None

    @property
    def module(self) -> str:
        return str(self.fn.__module__)


class TaskRegistry:
    """Kinds implemented by Python functions, by name."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self._names: frozenset[str] | None = None  # cached: asked on every submit

    def add(self, task: Task) -> None:
        if task.name in BUILTIN_KINDS:
            raise ValidationError(f"task name {task.name!r} is taken by a built-in kind")
        existing = self._tasks.get(task.name)
        if existing is not None and existing.fn is not task.fn:
            existing_at = f"{existing.module}.{existing.fn.__qualname__}"
            raise ValidationError(f"task {task.name!r} is already registered by {existing_at}")
        self._tasks[task.name] = task
        self._names = None

    def get(self, name: str) -> Task | None:
        return self._tasks.get(name)

    def names(self) -> frozenset[str]:
        if self._names is None:
            self._names = frozenset(self._tasks)
        return self._names

    def __contains__(self, name: object) -> bool:
        return name in self._tasks


default_registry = TaskRegistry()


@overload
def task(fn: F, /) -> F: ...


@overload
def task(
    *,
    name: str | None = None,
    retries: int | None = None,
    timeout: float | None = None,
    cpu: bool = False,
    queue: str | None = None,
    registry: TaskRegistry | None = None,
) -> Callable[[F], F]: ...


def task(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    retries: int | None = None,
    timeout: float | None = None,
    cpu: bool = False,
    queue: str | None = None,
    registry: TaskRegistry | None = None,
) -> F | Callable[[F], F]:
    """Register a function as a kind (by default its ``__name__``).

    ``retries`` is the number of retries after the first attempt (``max_attempts = retries+1``),
    ``timeout`` is in seconds. An ``async def`` runs on the worker's event loop; a plain function
    runs in a thread, or with ``cpu=True`` in the worker's process pool (it must then be
    importable by module path). The payload's keys are passed as keyword arguments.
    """

    def register(f: F) -> F:
        if retries is not None and retries < 0:
            raise ValidationError("retries must be >= 0")
        if timeout is not None and timeout <= 0:
            raise ValidationError("timeout must be > 0")
        is_async = inspect.iscoroutinefunction(f)
        if cpu and is_async:
            raise ValidationError("cpu=True tasks must be plain functions, not async def")
        (registry or default_registry).add(
            Task(
                name=name or f.__name__,
                fn=f,
                is_async=is_async,
                cpu=cpu,
                max_attempts=None if retries is None else retries + 1,
                timeout_s=timeout,
                queue=queue,
            )
        )
        return f

    if fn is not None:
        return register(fn)
    return register
