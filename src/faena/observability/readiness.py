"""``/readyz``: is this process able to do its work? Each check says ``ok`` or what is wrong.

- ``store``: the store answers a ping (within ``STORE_TIMEOUT_S``);
- ``migrations``: the schema is at the version this code ships (not behind, not ahead);
- ``pool``, ``reaper``, ``relay``, ``retention``, ``change_feed``: the background loops of this
  process are alive (only those this process runs are checked).

``/readyz`` answers without a key, so a failing check says only a generic reason
(``unreachable``, ``error``, ``schema behind this code``, ``crashed`` …), never an exception's
text (a database address, a driver message); the details go to the server's log line
``not ready`` with the request id (see :class:`NotReady`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from faena.domain.errors import Unavailable

STORE_TIMEOUT_S = 2.0
OK = "ok"


class NotReady(Unavailable):
    """Readiness failed; ``checks`` maps each check to ``ok`` or a generic reason (safe to
    show anyone), ``details`` each failing check to what exactly went wrong (for the log)."""

    def __init__(self, checks: dict[str, str], details: dict[str, str] | None = None) -> None:
        failing = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != OK)
        super().__init__(f"not ready ({failing})")
        self.checks = checks
        self.details = details or {}


def unwrap(store: Any) -> Any:
    """The adapter under the breaker/timing wrappers."""
    while hasattr(type(store), "inner"):
        store = store.inner
    return store


def shipped_schema_version(store: Any) -> int | None:
    """The newest migration this code ships for ``store``'s adapter; None without migrations."""
    module = type(unwrap(store)).__module__
    if module.startswith("faena.adapters.sqlite"):
        from faena.adapters.sqlite.migrate import available

        found = available()
        return found[-1].version if found else 0
    if module.startswith("faena.adapters.postgres"):
        from faena.adapters.postgres.migrate import latest_version

        return latest_version()
    return None


def task_alive(task: asyncio.Task[Any] | None) -> str:
    if task is None:
        return "not started"
    if task.done():
        if task.cancelled():
            return "stopped"
        error = task.exception()
        return f"crashed: {type(error).__name__}" if error is not None else "stopped"
    return OK


@dataclass
class Readiness:
    """The checks of one process; ``loops`` maps a name to a function saying ``ok`` or why not."""

    store: Any
    loops: dict[str, Callable[[], str]] = field(default_factory=dict)

    async def check(self) -> dict[str, Any]:
        checks: dict[str, str] = {}  # generic reasons: /readyz shows them to anyone
        details: dict[str, str] = {}  # what exactly failed: for the log only
        version: int | None = None
        try:
            async with asyncio.timeout(STORE_TIMEOUT_S):
                await self.store.ping()
                version = int(await self.store.schema_version())
            checks["store"] = OK
        except TimeoutError:
            checks["store"] = f"no answer within {STORE_TIMEOUT_S:g}s"
        except Unavailable as e:
            checks["store"], details["store"] = "unreachable", e.message
        except Exception as e:
            checks["store"], details["store"] = "error", f"{type(e).__name__}: {e}"
        shipped = shipped_schema_version(self.store)
        if version is None:
            checks["migrations"] = "unknown (store unreachable)"
        elif shipped is not None and version != shipped:
            checks["migrations"] = (
                "schema behind this code" if version < shipped else "schema newer than this code"
            )
            details["migrations"] = f"schema is version {version}, this code expects {shipped}"
        else:
            checks["migrations"] = OK
        for name, probe in self.loops.items():
            try:
                found = probe()
            except Exception as e:
                checks[name], details[name] = "error", f"{type(e).__name__}: {e}"
                continue
            checks[name] = "crashed" if found.startswith("crashed") else found
            if found != checks[name]:
                details[name] = found
        if any(v != OK for v in checks.values()):
            raise NotReady(checks, details)
        return {"store": OK, "schema_version": version, "checks": checks}


AsyncCheck = Callable[[], Awaitable[dict[str, Any]]]
