"""The machine's live load (psutil), as heartbeats report it."""

from __future__ import annotations

import os

import psutil

from faena.domain.workers import Capacity


class LoadProbe:
    """CPU and RAM use of this machine in percent. ``cpu_override`` pins the CPU figure (tests
    and demos of load-aware placement)."""

    def __init__(self, cpu_override: float | None = None) -> None:
        self._cpu_override = cpu_override
        psutil.cpu_percent(interval=None)  # the first call only starts the measurement

    def sample(self) -> tuple[float, float]:
        cpu = (
            self._cpu_override
            if self._cpu_override is not None
            else psutil.cpu_percent(interval=None)
        )
        return float(cpu), float(psutil.virtual_memory().percent)


def machine_capacity(slots: int, cpu_cores: float | None, memory_mb: int | None) -> Capacity:
    """What this machine offers, unless the operator said otherwise."""
    cores = cpu_cores if cpu_cores is not None else float(os.cpu_count() or 1)
    memory = (
        memory_mb if memory_mb is not None else int(psutil.virtual_memory().total // (1024 * 1024))
    )
    return Capacity(slots=slots, cpu_cores=cores, memory_mb=memory)
