"""``/readyz``: is this process able to do its work? Each check says ``ok`` or what is wrong.

- ``store``: the store answers a ping (within ``STORE_TIMEOUT_S``);
- ``migrations``: the schema is at the version this code ships (not behind, not ahead);
- ``pool``, ``reaper``, ``relay``, ``retention``, ``change_feed``: the background loops of this
  process are alive (only those this process runs are checked).
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
    """Readiness failed; ``checks`` maps each check to ``ok`` or the reason it failed."""

    def __init__(self, checks: dict[str, str]) -> None:
        failing = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != OK)
        super().__init__(f"not ready ({failing})")
        self.checks = checks


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
        checks: dict[str, str] = {}
        version: int | None = None
        try:
            async with asyncio.timeout(STORE_TIMEOUT_S):
                await self.store.ping()
                version = int(await self.store.schema_version())
            checks["store"] = OK
        except TimeoutError:
            checks["store"] = f"no answer within {STORE_TIMEOUT_S:g}s"
        except Unavailable as e:
            checks["store"] = e.message
        except Exception as e:
            checks["store"] = f"{type(e).__name__}: {e}"
        shipped = shipped_schema_version(self.store)
        if version is None:
            checks["migrations"] = "unknown (store unreachable)"
        elif shipped is not None and version != shipped:
            checks["migrations"] = f"schema is version {version}, this code expects {shipped}"
        else:
            checks["migrations"] = OK
        for name, probe in self.loops.items():
            try:
                checks[name] = probe()
            except Exception as e:
                checks[name] = f"{type(e).__name__}: {e}"
        if any(v != OK for v in checks.values()):
            raise NotReady(checks)
        return {"store": OK, "schema_version": version, "checks": checks}


AsyncCheck = Callable[[], Awaitable[dict[str, Any]]]
