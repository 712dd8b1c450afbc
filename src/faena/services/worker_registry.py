"""The worker registry: every worker that runs jobs (local pools, remote agents) is recorded in
the store with its capacity and live load, so any server sharing the store knows which kinds
are served and ``GET /v1/workers`` can show them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

from faena.domain.jobs import JobState
from faena.domain.workers import WorkerInfo, WorkerKind
from faena.ports.bus import EventBus
from faena.ports.clock import Clock
from faena.ports.store import JobStore, ListParams
from faena.ports.workers import DisconnectParams, ListWorkersParams, PruneWorkersParams, WorkerStore
from faena.services.kind_demand import KindDemand
from faena.services.worker_events import DISCONNECTED, change_type, worker_event

log = structlog.get_logger("faena.workers")

HEARTBEAT_S = 3.0  # how often a worker's record is refreshed
LIVE_TTL_S = 15.0  # a worker silent for longer is no longer live
KEEP_S = 24 * 3600.0  # records of workers silent for longer are forgotten
RUNNING_SHOWN = 1000  # running jobs read for GET /v1/workers, newest first


class WorkerRegistry:
    """Records this server's own workers (``publish``) and caches the kinds live workers serve."""

    def __init__(
        self,
        store: WorkerStore,
        clock: Clock,
        *,
        heartbeat_s: float = HEARTBEAT_S,
        live_ttl_s: float = LIVE_TTL_S,
        cache_s: float = 2.0,
        bus: EventBus | None = None,
    ) -> None:
        self._store = store
        self._bus = bus  # worker.* events of the workers this process records
        self._recorded: dict[str, WorkerInfo] = {}  # ... as last recorded (connected ones)
        self._clock = clock
        self.heartbeat_s = heartbeat_s
        self.live_ttl_s = live_ttl_s
        self._cache_s = cache_s
        self._local: list[Callable[[], WorkerInfo]] = []
        self._kind_sources: list[Callable[[], frozenset[str]]] = []
        self._cached_kinds: frozenset[str] = frozenset()
        self._cached_live: list[WorkerInfo] = []
        self._cached_at = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self._refresh: asyncio.Task[None] | None = None
        self.demand: KindDemand | None = None  # the orchestrator's: which kinds are submitted
        self.jobs: JobStore | None = None  # where running_jobs reads which job runs where

    @property
    def store(self) -> WorkerStore:
        return self._store

    @property
    def clock(self) -> Clock:
        return self._clock

    def add_local(self, describe: Callable[[], WorkerInfo]) -> None:
        """A worker of this process, recorded every ``heartbeat_s`` as ``describe()`` says."""
        self._local.append(describe)

    def idle_kinds(self, worker: WorkerInfo) -> list[str]:
        """The kinds a remote worker offers that no job was submitted for lately (a local pool
        offers every built-in kind: not reported)."""
        if self.demand is None or worker.kind is not WorkerKind.REMOTE:
            return []
        return self.demand.idle(worker.kinds)

    def add_kind_source(self, kinds: Callable[[], frozenset[str]]) -> None:
        """Kinds this process knows are served right now (its connected agents)."""
        self._kind_sources.append(kinds)

    # -- kinds -------------------------------------------------------------------------------

    def live_kinds(self) -> frozenset[str]:
        """Kinds served by live workers: this process's own at once, the store's cached for a
        few seconds (a stale cache starts a refresh in the background)."""
        now = self._clock.now()
        if now - self._cached_at > self._cache_s and self._refresh is None:
            with contextlib.suppress(RuntimeError):  # no running loop: keep the cache
                self._refresh = asyncio.get_running_loop().create_task(self._refresh_kinds())
        out = set(self._cached_kinds)
        for source in self._kind_sources:
            out.update(source())
        return frozenset(out)

    async def refresh(self) -> None:
        workers = await self.live()
        kinds: set[str] = set()
        for w in workers:
            kinds.update(w.kinds)
        self._cached_kinds = frozenset(kinds)
        self._cached_live = workers
        self._cached_at = self._clock.now()

    def live_cached(self) -> list[WorkerInfo]:
        """The live workers as of the last refresh (a few seconds old at most)."""
        self.live_kinds()  # starts a refresh when stale
        return list(self._cached_live)

    async def _refresh_kinds(self) -> None:
        try:
            await self.refresh()
        except Exception:
            log.exception("cannot read the worker registry")
        finally:
            self._refresh = None

    # -- reads -------------------------------------------------------------------------------

    async def live(self) -> list[WorkerInfo]:
        now = self._clock.now()
        found = await self._store.list_workers(ListWorkersParams(since=now - self.live_ttl_s))
        return [w for w in found if w.is_live(now, self.live_ttl_s)]

    async def recorded(self, tenant: str | None = None) -> list[WorkerInfo]:
        """Every worker seen in the last day, live or not; with ``tenant``, only those it may
        see (bound to it; the shared ones too for the operator's tenant)."""
        since = self._clock.now() - KEEP_S
        return await self._store.list_workers(ListWorkersParams(since=since, tenant=tenant))

    async def running_jobs(self, tenant: str) -> dict[str, list[str]]:
        """Ids of ``tenant``'s running jobs by the worker running them (another tenant's jobs
        on a shared worker are counted in its load, never named)."""
        if self.jobs is None:
            return {}
        running = frozenset({JobState.RUNNING})
        page = await self.jobs.list_jobs(
            ListParams(tenant=tenant, states=running, limit=RUNNING_SHOWN)
        )
        by_worker: dict[str, list[str]] = {}
        for job in page.jobs:
            if job.worker_id is not None:
                by_worker.setdefault(job.worker_id, []).append(job.id)
        return by_worker

    # -- this process's workers --------------------------------------------------------------

    async def publish(self) -> None:
        for describe in self._local:
            await self.save(describe())

    async def save(self, worker: WorkerInfo) -> None:
        await self._store.save_worker(worker)
        before = self._recorded.get(worker.id)
        self._recorded[worker.id] = worker
        if self._bus is not None:
            event = worker_event(change_type(before, worker), worker, self._clock.now())
            self._bus.publish([event])

    async def disconnect(self, worker_ids: list[str]) -> None:
        await self._store.disconnect_workers(DisconnectParams(worker_ids, self._clock.now()))
        gone = [w for w in (self._recorded.pop(i, None) for i in worker_ids) if w is not None]
        if self._bus is not None and gone:
            now = self._clock.now()
            self._bus.publish([worker_event(DISCONNECTED, w, now) for w in gone])

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="worker-registry")

    async def stop(self) -> None:
        for task in (self._task, self._refresh):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._refresh = None
        local_ids = [describe().id for describe in self._local]
        if local_ids:
            with contextlib.suppress(Exception):
                await self.disconnect(local_ids)

    async def _run(self) -> None:
        rounds = 0
        while True:
            try:
                await self.publish()
                await self.refresh()
                if rounds % 1000 == 0:
                    await self._store.prune_workers(
                        PruneWorkersParams(before=self._clock.now() - KEEP_S)
                    )
            except Exception:
                log.exception("worker registry update failed; retrying")
            rounds += 1
            await asyncio.sleep(self.heartbeat_s)
