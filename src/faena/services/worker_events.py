"""Worker events for live streams (``WS /v1/events``): what the workers page shows, as it
changes, for the tenants that may see the worker.

- ``worker.connected``: a worker this process records appeared (a local pool started, a remote
  agent registered or reconnected);
- ``worker.heartbeat``: its record was refreshed with new load (every few seconds);
- ``worker.draining``: it takes no new jobs and finishes the ones it runs;
- ``worker.disconnected``: it left (its stream dropped, it stopped, it was revoked).

A worker bound to a tenant (connected with one of its worker tokens) is that tenant's event; a
worker serving every tenant (a local pool, a shared token) is the operator's (``default``),
exactly as ``GET /v1/workers`` lists them. The data is the worker's public record, never a job
or a tenant of the jobs it runs. Published by the server that records the worker: a browser
connected to another server sharing the store sees the change on its next read of
``GET /v1/workers``.
"""

from __future__ import annotations

from typing import Any

from faena.domain.events import Event
from faena.domain.tenants import OPERATOR_TENANT
from faena.domain.workers import WorkerInfo, WorkerState

CONNECTED = "worker.connected"
HEARTBEAT = "worker.heartbeat"
DRAINING = "worker.draining"
DISCONNECTED = "worker.disconnected"


def change_type(before: WorkerInfo | None, after: WorkerInfo) -> str:
    """What recording ``after`` over ``before`` (None: not recorded by this process yet) is."""
    if before is None or before.state is WorkerState.DISCONNECTED:
        return CONNECTED
    if after.state is WorkerState.DRAINING and before.state is not WorkerState.DRAINING:
        return DRAINING
    return HEARTBEAT


def worker_event(type_: str, worker: WorkerInfo, ts: float) -> Event:
    data: dict[str, Any] = {
        "worker_id": worker.id,
        "kind": worker.kind.value,
        "state": WorkerState.DISCONNECTED.value if type_ == DISCONNECTED else worker.state.value,
        "host": worker.host,
        "running": 0 if type_ == DISCONNECTED else worker.load.running,
        "load": {
            "cpu_percent": worker.load.cpu_percent,
            "memory_percent": worker.load.memory_percent,
        },
        "last_heartbeat": worker.last_heartbeat,
    }
    # A shared worker (tenant None) serves every tenant, and only the operator lists those.
    return Event(type=type_, tenant=worker.tenant or OPERATOR_TENANT, data=data, ts=ts)
