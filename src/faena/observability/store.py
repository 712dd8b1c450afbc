"""A store wrapper that times every operation (``faena_store_operation_duration_seconds``)
and, with tracing on, opens a sampled span for it.

Delegates by name like :class:`faena.services.breaker.GuardedStore`, so operations added to
the Store port later are timed too; plain attributes pass through untouched.
"""

from __future__ import annotations

import inspect
import time
from typing import Any, cast

from faena.observability.metrics import Metrics
from faena.observability.tracing import Tracing
from faena.ports.store import JobStore

_UNTIMED = frozenset({"open", "close", "change_feed"})


class TimedStore:
    def __init__(self, store: JobStore, metrics: Metrics, tracing: Tracing | None) -> None:
        self._store = store
        self._metrics = metrics
        self._tracing = tracing

    @property
    def inner(self) -> JobStore:
        return self._store

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name in _UNTIMED or name.startswith("_") or not inspect.iscoroutinefunction(attr):
            return attr
        record = self._metrics.record_store
        tracing = self._tracing
        perf = time.perf_counter

        async def timed(*args: Any, **kwargs: Any) -> Any:
            span = None if tracing is None else tracing.store_span(name)
            if span is not None:
                span.__enter__()
            started = perf()
            try:
                result = await attr(*args, **kwargs)
            except BaseException as e:
                record(name, perf() - started, failed=isinstance(e, Exception))
                if span is not None:
                    span.__exit__(type(e), e, e.__traceback__)
                raise
            record(name, perf() - started)
            if span is not None:
                span.__exit__(None, None, None)
            return result

        timed.__name__ = name
        setattr(self, name, timed)  # later lookups find it without __getattr__
        return timed


def timed(store: JobStore, metrics: Metrics, tracing: Tracing | None) -> JobStore:
    return cast(JobStore, TimedStore(store, metrics, tracing))
