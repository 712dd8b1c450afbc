"""Batched recording of attempt outcomes (group commit), with their events."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from faena.ports.bus import EventBus
from faena.ports.clock import Clock
from faena.ports.store import CompleteParams, Completion, JobStore
from faena.ports.telemetry import NULL_OBSERVER, JobObserver
from faena.services.batching import GroupCommitter
from faena.services.orchestrator import state_event


class Completer:
    def __init__(
        self,
        store: JobStore,
        bus: EventBus,
        clock: Clock,
        on_runnable: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._on_runnable = on_runnable
        self._committer: GroupCommitter[Completion] = GroupCommitter(
            self._flush, name="completions"
        )
        self._observer: JobObserver = NULL_OBSERVER

    def set_observer(self, observer: JobObserver) -> None:
        """Report each applied batch of outcomes to ``observer`` (metrics)."""
        self._observer = observer

    def set_on_runnable(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` when an outcome makes work claimable again (a retry, a lease)."""
        self._on_runnable = hook

    async def _flush(self, completions: Sequence[Completion]) -> None:
        now = self._clock.now()
        applied = await self._store.complete_many(CompleteParams(completions=completions, now=now))
        if applied:
            self._bus.publish([state_event(job, now) for job in applied])
            self._observer.completed(applied, now)
            if self._on_runnable is not None and any(not j.is_terminal for j in applied):
                self._on_runnable()

    def add(self, completion: Completion) -> None:
        self._committer.add(completion)

    async def drain(self) -> None:
        await self._committer.drain()

    async def close(self) -> None:
        await self._committer.close()

    @property
    def backlog(self) -> int:
        return self._committer.backlog
