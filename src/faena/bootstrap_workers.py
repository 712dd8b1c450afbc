"""Wiring of the worker plane (part of the composition root): the worker registry, worker
tokens, the worker manager (remote placement) and the gRPC listener of the worker protocol."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any, cast

from faena.config import Settings
from faena.domain.errors import ValidationError
from faena.domain.jobs import Job, JobState
from faena.domain.placement import scorer_named
from faena.domain.workers import Load, WorkerInfo, WorkerKind
from faena.ports.bus import EventBus
from faena.ports.clock import Clock
from faena.ports.store import JobStore
from faena.ports.workers import WorkerStore
from faena.services.catalog import KindCatalog
from faena.services.completions import Completer
from faena.services.logs import LogWriter
from faena.services.orchestrator import Orchestrator
from faena.services.worker_manager import ManagerConfig, WorkerManager
from faena.services.worker_registry import WorkerRegistry
from faena.services.worker_tokens import WorkerTokens
from faena.worker.masking import SecretMasker, secret_environment


@dataclass
class WorkerPlane:
    registry: WorkerRegistry
    tokens: WorkerTokens
    manager: WorkerManager
    settings: Settings
    grpc: Any = None  # faena.protocol.server.GrpcWorkerServer once serving
    _started: bool = field(default=False, repr=False)

    @property
    def grpc_port(self) -> int:
        return 0 if self.grpc is None else int(self.grpc.port)

    @property
    def tls(self) -> bool:
        return self.settings.tls_cert is not None

    async def start(self) -> None:
        self.registry.start()
        self.manager.start()
        self._started = True

    async def serve_grpc(self) -> None:
        """Listen for remote workers on ``grpc_port`` (Unavailable when it is taken)."""
        from faena.protocol.server import GrpcWorkerServer, TlsFiles

        s = self.settings
        tls = None
        if s.tls_cert is not None or s.tls_key is not None:
            if s.tls_cert is None or s.tls_key is None:
                raise ValidationError("TLS needs both --tls-cert and --tls-key")
            tls = TlsFiles(s.tls_cert, s.tls_key, s.tls_client_ca)
        elif s.tls_client_ca is not None:
            raise ValidationError("--tls-client-ca needs --tls-cert and --tls-key")
        server = GrpcWorkerServer(
            self.manager,
            self.tokens,
            host=s.host,
            port=s.grpc_port,
            lease_s=s.lease_s,
            tls=tls,
            max_message_bytes=s.grpc_max_message_bytes,
        )
        await server.start()
        self.grpc = server

    async def stop(self) -> None:
        if self.grpc is not None:
            await self.manager.stop()
            await self.grpc.stop()
            self.grpc = None
        elif self._started:
            await self.manager.stop()
        if self._started:
            await self.registry.stop()
            self._started = False


def server_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def build_worker_plane(
    settings: Settings,
    *,
    store: JobStore,
    bus: EventBus,
    clock: Clock,
    logs: LogWriter,
    completer: Completer,
    catalog: KindCatalog,
    orchestrator: Orchestrator,
) -> WorkerPlane:
    workers = cast(WorkerStore, store)  # every store adapter is also a WorkerStore
    scorer_named(settings.placement)
    for name in settings.queue_scorers().values():
        scorer_named(name)
    registry = WorkerRegistry(workers, clock, bus=bus)  # worker.* events for live pages
    registry.demand = orchestrator.demand  # idle_kinds of remote workers
    registry.jobs = store  # the running jobs GET /v1/workers names
    tokens = WorkerTokens(workers, clock)
    manager = WorkerManager(
        store,
        workers,
        bus=bus,
        clock=clock,
        logs=logs,
        completer=completer,
        registry=registry,
        tokens=tokens,
        config=ManagerConfig(
            server_id=server_id(),
            lease_s=settings.lease_s,
            heartbeat_s=min(2.0, settings.lease_s / 3),
            scorer=settings.placement,
            queue_scorers=settings.queue_scorers(),
        ),
        masker=SecretMasker(secret_environment(os.environ)),
    )
    registry.add_kind_source(manager.connected_kinds)
    catalog.add_source(registry.live_kinds)
    orchestrator.on_runnable(manager.wake)

    async def explain(job: Job) -> str | None:
        if job.state is not JobState.QUEUED and job.state is not JobState.SCHEDULED:
            return None
        return manager.explain(job, await registry.live())

    orchestrator.set_placement_explainer(explain)
    return WorkerPlane(registry, tokens, manager, settings)


def record_local_pool(plane: WorkerPlane, pool: Any, executor: Any, clock: Clock) -> None:
    """Record the local pool in the registry, with this machine's load."""
    from faena import __version__
    from faena.worker.load import LoadProbe, machine_capacity

    probe = LoadProbe()
    started = clock.now()
    settings = plane.settings
    capacity = machine_capacity(settings.workers, None, None)

    def describe() -> WorkerInfo:
        cpu, memory = probe.sample()
        now = clock.now()
        return WorkerInfo(
            id=pool.config.worker_id,
            kind=WorkerKind.LOCAL,
            kinds=frozenset(executor.kinds()),
            labels=dict(pool.config.labels),
            capacity=capacity,
            version=__version__,
            host=socket.gethostname(),
            server=server_id(),
            started_at=started,
            last_heartbeat=now,
            load=Load(cpu_percent=cpu, memory_percent=memory, running=pool.running),
        )

    plane.registry.add_local(describe)
    plane.registry.add_kind_source(lambda: frozenset(executor.kinds()))
