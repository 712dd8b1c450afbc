"""The @faena.task registry: names, declared defaults, and refusals."""

from __future__ import annotations

import pytest

from faena.domain.errors import ValidationError
from faena.worker.registry import TaskRegistry, task


def test_a_task_is_registered_under_its_function_name() -> None:
    registry = TaskRegistry()

    @task(registry=registry)
    async def fetch(url: str) -> str:
        return url

    registered = registry.get("fetch")
    assert registered is not None
    assert (registered.fn, registered.is_async, registered.cpu) == (fetch, True, False)
    assert "fetch" in registry and registry.names() == {"fetch"}


def test_the_bare_decorator_registers_in_the_default_registry() -> None:
    from faena.worker.registry import default_registry

    @task
    def faena_test_bare_decorator() -> None:
        return None

    assert default_registry.get("faena_test_bare_decorator") is not None


def test_retries_timeout_and_queue_become_job_defaults() -> None:
    registry = TaskRegistry()

    @task(name="ocr", retries=2, timeout=30, queue="cpu", cpu=True, registry=registry)
    def ocr_page(data: str) -> str:
        return data

    registered = registry.get("ocr")
    assert registered is not None
    assert (registered.max_attempts, registered.timeout_s, registered.queue, registered.cpu) == (
        3,
        30,
        "cpu",
        True,
    )


def test_a_second_function_under_the_same_name_is_refused() -> None:
    registry = TaskRegistry()

    @task(name="dup", registry=registry)
    def first() -> None:
        return None

    with pytest.raises(ValidationError, match="'dup' is already registered by"):

        @task(name="dup", registry=registry)
        def second() -> None:
            return None


def test_registering_the_same_function_twice_is_harmless() -> None:
    registry = TaskRegistry()

    def job() -> None:
        return None

    task(registry=registry)(job)
    task(registry=registry)(job)
    assert registry.names() == {"job"}


@pytest.mark.parametrize("name", ["noop", "sleep", "shell", "http"])
def test_a_builtin_kind_name_is_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="taken by a built-in kind"):
        task(name=name, registry=TaskRegistry())(lambda: None)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"retries": -1}, "retries must be >= 0"), ({"timeout": 0}, "timeout must be > 0")],
)
def test_out_of_range_options_are_refused(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        task(registry=TaskRegistry(), **options)(lambda: None)  # type: ignore[call-overload]


def test_an_async_cpu_task_is_refused() -> None:
    async def crunch() -> None:
        return None

    with pytest.raises(ValidationError, match="cpu=True tasks must be plain functions"):
        task(cpu=True, registry=TaskRegistry())(crunch)
