"""``cpu=True`` tasks for the executor tests. The process pool imports this module by name."""

from __future__ import annotations

import os
import time

from faena.worker.context import current_job
from faena.worker.registry import TaskRegistry, task

registry = TaskRegistry()


@task(cpu=True, registry=registry)
def square_in_child(n: int) -> dict[str, int]:
    return {"square": n * n, "pid": os.getpid()}


@task(cpu=True, registry=registry)
def chatty(name: str) -> str:
    print(f"hello {name}")
    current_job().log(f"job {current_job().job_id} attempt {current_job().attempt}")
    return name


@task(cpu=True, registry=registry)
def explode() -> None:
    raise ValueError("bad input in the child")


@task(cpu=True, registry=registry)
def returns_bytes() -> bytes:
    return b"raw"


@task(cpu=True, registry=registry)
def spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
