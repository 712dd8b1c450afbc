"""Which kinds jobs are submitted for: so a worker offering a kind nobody submits is reported
(``idle_kinds`` in ``GET /v1/workers``, a warning when it connects), not silently ignored.

In memory, per server: it knows the submits this server took (API, workflows, triggers) since
it started. With several servers, a kind submitted only through another server reads as idle
here; the report is a hint to check a deployment, never a reason to refuse a worker.
"""

from __future__ import annotations

from collections.abc import Iterable

from faena.ports.clock import Clock

WINDOW_S = 3600.0  # a kind with no submit for this long is idle


class KindDemand:
    def __init__(self, clock: Clock, *, window_s: float = WINDOW_S) -> None:
        self._clock = clock
        self.window_s = window_s
        self._last: dict[str, float] = {}

    def note(self, kinds: Iterable[str]) -> None:
        """Jobs of ``kinds`` were just submitted."""
        now = self._clock.now()
        for kind in kinds:
            self._last[kind] = now

    def idle(self, kinds: Iterable[str]) -> list[str]:
        """The kinds among ``kinds`` with no submit seen in the last ``window_s``, sorted."""
        horizon = self._clock.now() - self.window_s
        return sorted(k for k in set(kinds) if self._last.get(k, float("-inf")) < horizon)
