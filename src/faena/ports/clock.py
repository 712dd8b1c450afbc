"""Time and randomness, injected so leases, retries and schedules are testable."""

from __future__ import annotations

import random
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""


class SystemClock:
    def now(self) -> float:
        return time.time()


class Jitter(Protocol):
    def __call__(self) -> float:
        """A number in [0, 1)."""


system_jitter: Jitter = random.random
