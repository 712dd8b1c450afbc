"""A circuit breaker in front of the store: when the database is away, fail fast and say so.

Closed (normal): every call goes through; ``failures`` Unavailable errors in a row open it.
Open: calls fail at once with Unavailable (the API answers 503; background loops back off)
for ``reset_s``. Half-open: the next call is let through as a probe while the others keep
failing fast; if the probe reaches the database the breaker closes, otherwise it opens again.

Only :class:`Unavailable` counts as a failure: a NotFound or a Conflict means the database
answered. Nothing is queued or dropped here: callers that must not lose work (the completer and
the log writer) keep their batches and retry.
"""

from __future__ import annotations

import enum
import inspect
import time
from collections.abc import Callable
from typing import Any, cast

import structlog

from faena.domain.errors import FaenaError, Unavailable
from faena.ports.store import JobStore

log = structlog.get_logger("faena.breaker")

# Store methods that bypass the breaker: opening must report the real error at start-up, and
# closing must always happen.
_UNGUARDED = frozenset({"open", "close"})


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    def __init__(
        self,
        *,
        failures: int = 5,
        reset_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "store",
    ) -> None:
        if failures < 1 or reset_s <= 0:
            raise ValueError("a breaker needs failures >= 1 and reset_s > 0")
        self._threshold = failures
        self._reset_s = reset_s
        self._clock = clock
        self._name = name
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self._last_error = ""
        self.opened_total = 0

    @property
    def state(self) -> BreakerState:
        return self._state

    def before(self) -> None:
        """Raise Unavailable when the call must fail fast; otherwise let it through."""
        if self._state is BreakerState.CLOSED:
            return
        if self._state is BreakerState.OPEN:
            left = self._opened_at + self._reset_s - self._clock()
            if left > 0:
                raise Unavailable(self._message(f"retrying in {left:.1f}s"))
            self._state = BreakerState.HALF_OPEN
        if self._probing:
            raise Unavailable(self._message("checking whether it is back"))
        self._probing = True

    def succeeded(self) -> None:
        """The call reached the database."""
        if self._state is not BreakerState.CLOSED:
            log.info("store reachable again; circuit closed", breaker=self._name)
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._probing = False

    def failed(self, error: Unavailable) -> None:
        """The call could not reach the database."""
        self._probing = False
        self._failures += 1
        self._last_error = error.message
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED and self._failures >= self._threshold
        ):
            if self._state is BreakerState.CLOSED:
                self.opened_total += 1
                log.warning(
                    "store unavailable; failing fast until it answers again",
                    breaker=self._name,
                    failures=self._failures,
                    cool_down_s=self._reset_s,
                    error=error.message,
                )
            self._state = BreakerState.OPEN
            self._opened_at = self._clock()

    def abandoned(self) -> None:
        """The call ended without an answer either way (cancelled, or a bug): free the probe."""
        self._probing = False

    def _message(self, status: str) -> str:
        return f"the database is unavailable ({self._last_error}); {status}"


class GuardedStore:
    """A store whose every call passes through a :class:`CircuitBreaker`.

    Delegates by name, so operations added to the Store port later are guarded too; plain
    attributes (``supports_notify``) and non-coroutine methods pass through untouched.
    """

    def __init__(self, store: JobStore, breaker: CircuitBreaker) -> None:
        self._store = store
        self.breaker = breaker

    @property
    def inner(self) -> JobStore:
        return self._store

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name in _UNGUARDED or name.startswith("_") or not inspect.iscoroutinefunction(attr):
            return attr
        breaker = self.breaker

        async def guarded(*args: Any, **kwargs: Any) -> Any:
            breaker.before()
            try:
                result = await attr(*args, **kwargs)
            except Unavailable as error:
                breaker.failed(error)
                raise
            except FaenaError:
                breaker.succeeded()  # the database answered, with a refusal
                raise
            except BaseException:
                breaker.abandoned()
                raise
            breaker.succeeded()
            return result

        guarded.__name__ = name
        setattr(self, name, guarded)  # later lookups find it without __getattr__
        return guarded


def guarded(store: JobStore, breaker: CircuitBreaker) -> JobStore:
    """``store`` behind ``breaker``, typed as the port it implements."""
    return cast(JobStore, GuardedStore(store, breaker))


def log_store_error(logger: Any, event: str, error: BaseException, **fields: Any) -> None:
    """Log a failed store call from inside its ``except`` block. Unavailable is expected while
    the database is away (restart, failover): one warning line, no traceback; anything else is
    a bug and keeps its traceback."""
    if isinstance(error, Unavailable):
        logger.warning(event, error=error.message, **fields)
    else:
        logger.exception(event, **fields)
