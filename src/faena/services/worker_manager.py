"""The worker manager: remote workers connected to this server, and the scheduler that places
queued jobs on them.

Each placement round reads up to a window of runnable jobs of the kinds connected workers serve
(``WorkerStore.peek_runnable``), runs the pure placement pipeline (filters, then the scorer of
the job's queue) and claims each worker's share with ``WorkerStore.claim_jobs`` (worker id = the
agent's id; the attempt number is the fencing token), then pushes the assignments. A worker
connected with a tenant's token is bound to that tenant: it is only offered, and can only
claim, that tenant's jobs; a worker on a shared token (the operator's) serves every tenant, as
the local pool does. While a worker's heartbeats arrive, the server renews its jobs' leases;
when they stop or its stream drops, the leases expire and the jobs are placed again. Outcomes
go through the Completer, whose compare-and-swap on the attempt drops a late result from an old
attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict

import structlog

from faena.domain.errors import Forbidden, Unauthorized
from faena.domain.events import Event
from faena.domain.jobs import Job, JobState
from faena.domain.logs import LogChunk, LogStream
from faena.domain.placement import (
    Candidate,
    Demand,
    Scorer,
    eligible,
    plan,
    scorer_named,
)
from faena.domain.retry import after_failure
from faena.domain.secrets import SecretError
from faena.domain.workers import Load, WorkerInfo, WorkerKind, WorkerState
from faena.ports.bus import EventBus
from faena.ports.clock import Clock, Jitter, system_jitter
from faena.ports.store import Completion, ExtendLeasesParams, JobStore, LeaseRef
from faena.ports.telemetry import NULL_OBSERVER, JobObserver
from faena.ports.workers import (
    ClaimJobsParams,
    ListWorkersParams,
    PeekParams,
    WorkerChannel,
    WorkerStore,
)
from faena.services.completions import Completer
from faena.services.logs import MAX_CHUNK_CHARS, LogWriter
from faena.services.orchestrator import state_event
from faena.services.secrets import HandOff, SecretService
from faena.services.worker_registry import WorkerRegistry
from faena.services.worker_sessions import (
    ManagerConfig,
    Registration,
    ResultIn,
    Session,
    job_resources,
)
from faena.services.worker_tokens import WorkerTokens
from faena.worker.masking import SecretMasker

log = structlog.get_logger("faena.workers")

MAX_WINDOW = 1000  # runnable jobs read per placement round
MAX_EXPLAINED = 10_000
MAX_TRACKED_LOGS = 100_000  # attempts whose last taken log chunk is remembered
MAX_JOB_MASKERS = 100_000  # jobs handed secrets whose outcome has not come back yet


class WorkerManager:
    def __init__(
        self,
        store: JobStore,
        workers: WorkerStore,
        *,
        bus: EventBus,
        clock: Clock,
        logs: LogWriter,
        completer: Completer,
        registry: WorkerRegistry,
        tokens: WorkerTokens,
        config: ManagerConfig,
        masker: SecretMasker | None = None,
        jitter: Jitter = system_jitter,
    ) -> None:
        self._store = store
        self._workers = workers
        self._bus = bus
        self._clock = clock
        self._logs = logs
        self._completer = completer
        self._registry = registry
        self._tokens = tokens
        self.config = config
        self._masker = masker or SecretMasker()
        self._jitter = jitter
        self._default_scorer = scorer_named(config.scorer)
        self._queue_scorers = {q: scorer_named(n) for q, n in config.queue_scorers.items()}
        self._sessions: dict[str, Session] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._unplaced: OrderedDict[str, str] = OrderedDict()
        self.placed_total = 0
        self._observer: JobObserver = NULL_OBSERVER  # metrics of remote starts (issue 7)
        self._secrets: SecretService | None = None
        # Per job handed secrets: this server masks them again in what comes back (a worker of
        # an older version does not know the assignment's mask field).
        self._job_maskers: OrderedDict[str, SecretMasker] = OrderedDict()
        # (job, attempt) -> the last log chunk taken: chunks sent again after a reconnect are
        # dropped, not stored twice (bounded: the oldest attempts are forgotten).
        self._log_seqs: OrderedDict[tuple[str, int], int] = OrderedDict()
        tokens.on_revoke(self.revoked)

    # -- lifecycle ---------------------------------------------------------------------------

    def set_observer(self, observer: JobObserver) -> None:
        """Report jobs placed on remote workers to ``observer`` (metrics)."""
        self._observer = observer

    def set_secrets(self, secrets: SecretService) -> None:
        """Resolve ``{{ secrets.NAME }}`` in payloads as jobs are assigned to workers."""
        self._secrets = secrets

    def _masker_for(self, job_id: str) -> SecretMasker:
        return self._job_maskers.get(job_id, self._masker)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._placement_loop(), name="placement"),
            loop.create_task(self._lease_loop(), name="remote-leases"),
            loop.create_task(self._cancel_listener(), name="remote-cancel"),
            loop.create_task(self._token_loop(), name="remote-tokens"),
        ]

    async def stop(self) -> None:
        for session in list(self._sessions.values()):
            session.channel.close("the server is shutting down", retry=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        ids = list(self._sessions)
        self._sessions.clear()
        if ids:
            with contextlib.suppress(Exception):
                await self._registry.disconnect(ids)

    def wake(self) -> None:
        self._wake.set()

    # -- what this server knows ----------------------------------------------------------------

    def connected_kinds(self) -> frozenset[str]:
        out: set[str] = set()
        for s in self._sessions.values():
            out.update(s.info.kinds)
        return frozenset(out)

    @property
    def sessions(self) -> dict[str, Session]:
        return self._sessions

    def explain(self, job: Job, live: list[WorkerInfo]) -> str | None:
        """Why a queued job is not running, or None when nothing stands in its way."""
        if job.state is not JobState.QUEUED and not (
            job.state is JobState.SCHEDULED
            and job.run_at is not None
            and job.run_at <= self._clock.now()
        ):
            return None
        candidates = [self._candidate_of(w) for w in live]
        _, reason = eligible(_demand(job), candidates)
        return reason or self._unplaced.get(job.id)

    def _candidate_of(self, w: WorkerInfo) -> Candidate:
        session = self._sessions.get(w.id)
        if session is not None:
            return session.candidate(healthy=True)
        return Candidate(
            id=w.id,
            kinds=w.kinds,
            labels=w.labels,
            capacity=w.capacity,
            free_slots=0
            if w.state is WorkerState.DRAINING
            else max(0, w.capacity.slots - w.load.running),
            load=w.load,
            tenant=w.tenant,
        )

    # -- connections -----------------------------------------------------------------------------

    async def connect(
        self, reg: Registration, token_id: str, channel: WorkerChannel, *, tenant: str | None
    ) -> Session:
        """Register a worker connected with ``token_id``; ``tenant``: the only tenant it serves
        (its token's), None for a shared token. Forbidden when a worker of that id is connected
        for another tenant (a worker id is chosen by the agent: it must not take over another
        tenant's worker and its running jobs)."""
        now = self._clock.now()
        old = self._sessions.get(reg.worker_id)
        if old is not None and old.info.tenant != tenant:
            raise Forbidden(f"worker id {reg.worker_id!r} is in use by another worker")
        if old is None:
            await self._check_worker_id(reg.worker_id, tenant, now)
        if old is not None:  # the same worker again: the old stream is dead or a duplicate
            old.channel.close("replaced by a newer connection of this worker", retry=False)
        info = WorkerInfo(
            id=reg.worker_id,
            kind=WorkerKind.REMOTE,
            kinds=reg.kinds,
            labels=dict(reg.labels),
            capacity=reg.capacity,
            version=reg.version,
            host=reg.host,
            server=self.config.server_id,
            started_at=now,
            last_heartbeat=now,
            load=Load(running=len(reg.running)),
            tenant=tenant,
        )
        session = Session(info, channel, token_id, last_heartbeat=now, last_saved=now)
        self._sessions[reg.worker_id] = session
        await self._adopt(session, reg.running)
        await self._registry.save(session.info)
        log.info(
            "worker connected",
            worker_id=reg.worker_id,
            serves_tenant=tenant or "*",
            kinds=sorted(reg.kinds),
            labels=reg.labels,
            slots=reg.capacity.slots,
        )
        idle = self._registry.idle_kinds(session.info)
        if idle:
            log.warning(
                "worker offers kinds no job was submitted for lately",
                worker_id=reg.worker_id,
                idle_kinds=idle,
                window_s=self._registry.demand.window_s if self._registry.demand else None,
            )
        self.wake()
        return session

    async def _check_worker_id(self, worker_id: str, tenant: str | None, now: float) -> None:
        """Forbidden when a live worker of that id, recorded by any server, serves another
        tenant than ``tenant``."""
        ttl = self._registry.live_ttl_s
        for w in await self._workers.list_workers(ListWorkersParams(since=now - ttl)):
            if w.id == worker_id and w.tenant != tenant and w.is_live(now, ttl):
                raise Forbidden(f"worker id {worker_id!r} is in use by another worker")

    async def _adopt(self, session: Session, running: tuple[tuple[str, int, str], ...]) -> None:
        """Jobs a reconnecting worker still runs: kept if their lease is still its own (and,
        for a worker bound to a tenant, the job is that tenant's)."""
        if not running:
            return
        bound = session.info.tenant
        if bound is not None:
            for job_id, attempt, tenant in running:
                if tenant != bound:
                    session.channel.cancel(job_id, attempt, "not a job of this worker's tenant")
            running = tuple(r for r in running if r[2] == bound)
            if not running:
                return
        refs = [LeaseRef(job_id, attempt) for job_id, attempt, _ in running]
        held = set(
            await self._store.extend_leases(
                ExtendLeasesParams(session.id, refs, self.config.lease_s, self._clock.now())
            )
        )
        for job_id, attempt, tenant in running:
            job = await self._store.get(tenant, job_id) if job_id in held else None
            if job is not None and job.attempts == attempt and session.info.serves(job.tenant):
                session.held[job_id] = job
            else:
                session.channel.cancel(job_id, attempt, "lease lost while disconnected")

    async def disconnect(self, session: Session) -> None:
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]
            with contextlib.suppress(Exception):
                await self._registry.disconnect([session.id])
            log.info("worker disconnected", worker_id=session.id, running=len(session.held))

    def revoked(self, token_id: str) -> None:
        for session in list(self._sessions.values()):
            if session.token_id == token_id:
                session.channel.close("worker token revoked", retry=False)

    # -- messages from workers -------------------------------------------------------------------

    async def heartbeat(self, session: Session, cpu: float, memory: float) -> None:
        now = self._clock.now()
        session.last_heartbeat = now
        session.info = session.info.evolve(
            last_heartbeat=now,
            load=Load(cpu_percent=cpu, memory_percent=memory, running=len(session.held)),
            state=WorkerState.DRAINING if session.draining else WorkerState.CONNECTED,
        )
        if now - session.last_saved >= self._registry.heartbeat_s:
            session.last_saved = now
            await self._registry.save(session.info)

    def ack(self, session: Session, job_id: str, attempt: int, accepted: bool, reason: str) -> None:
        if accepted:
            return
        job = session.held.pop(job_id, None)
        self._job_maskers.pop(job_id, None)
        if job is not None and job.attempts == attempt:
            log.info("worker refused a job", worker_id=session.id, job_id=job_id, reason=reason)
            self._completer.add(Completion(job_id, attempt, JobState.QUEUED))
            self.wake()

    def log_chunk(
        self,
        session: Session,
        *,
        job_id: str,
        attempt: int,
        seq: int,
        stream: LogStream,
        data: str,
        ts: float,
    ) -> None:
        job = session.held.get(job_id)
        key = (job_id, attempt)
        taken = self._log_seqs.get(key, -1)
        if job is None or job.attempts != attempt or seq <= taken:
            # Not (or no longer) this worker's attempt, or a chunk sent again after a reconnect
            # that was already taken: acknowledged, so the worker stops keeping it.
            session.channel.log_ack(job_id, attempt, max(seq, taken))
            return
        self._log_seqs[key] = seq
        self._log_seqs.move_to_end(key)
        while len(self._log_seqs) > MAX_TRACKED_LOGS:
            self._log_seqs.popitem(last=False)
        session.channel.log_ack(job_id, attempt, seq)
        data = self._masker_for(job_id).mask(data)
        for i, start in enumerate(range(0, max(len(data), 1), MAX_CHUNK_CHARS)):
            self._logs.add(
                LogChunk(
                    job_id=job_id,
                    seq=seq + i,
                    stream=stream,
                    data=data[start : start + MAX_CHUNK_CHARS],
                    ts=ts,
                    tenant=job.tenant,
                    attempt=attempt,
                )
            )

    def progress(
        self, session: Session, job_id: str, attempt: int, fraction: float, message: str
    ) -> None:
        job = session.held.get(job_id)
        if job is None or job.attempts != attempt:
            return
        masked = self._masker_for(job_id).mask(message)
        self._logs.progress.report(job, attempt, fraction, masked)  # event + the job's JSON

    async def result(self, session: Session, r: ResultIn) -> None:
        self._log_seqs.pop((r.job_id, r.attempt), None)  # its output is all in
        job = session.held.pop(r.job_id, None)
        if job is None or job.attempts != r.attempt:
            # Not held here (a reconnect to another server, or a stale attempt): the store
            # decides; an old attempt's outcome is dropped by the compare-and-swap.
            if job is not None:
                session.held[r.job_id] = job
            job = await self._store.get(r.tenant, r.job_id) if r.tenant else None
            if (
                job is None
                or job.state is not JobState.RUNNING
                or job.attempts != r.attempt
                or job.worker_id != session.id  # not claimed for this worker
                or not session.info.serves(job.tenant)
            ):
                log.info(
                    "late result rejected", worker_id=session.id, job_id=r.job_id, attempt=r.attempt
                )
                return
        session.outcomes.append((r.succeeded, r.run_s))
        completion = self._completion(job, r)
        await self._logs.drain()  # a job's output is stored before its outcome
        self._completer.add(completion)
        self.wake()

    def _completion(self, job: Job, r: ResultIn) -> Completion:
        masker = self._job_maskers.pop(job.id, self._masker)
        if r.handed_back:
            return Completion(job.id, r.attempt, JobState.QUEUED)
        result = masker.mask_value(r.result)
        if r.succeeded:
            return Completion(job.id, r.attempt, JobState.SUCCEEDED, result=result)
        error = masker.mask(r.error or "failed")
        now = self._clock.now()
        state, run_at = (
            after_failure(job, now, self._jitter) if r.retryable else (JobState.FAILED, None)
        )
        return Completion(job.id, r.attempt, state, result=result, error=error, run_at=run_at)

    async def drain(self, session: Session) -> None:
        session.draining = True
        session.info = session.info.evolve(state=WorkerState.DRAINING)
        with contextlib.suppress(Exception):
            await self._registry.save(session.info)
        log.info("worker draining", worker_id=session.id, running=len(session.held))

    # -- placement -------------------------------------------------------------------------------

    def _scorer(self, queue: str) -> Scorer:
        return self._queue_scorers.get(queue, self._default_scorer)

    async def place_once(self) -> int:
        """One round of placement; returns how many jobs were assigned."""
        open_sessions = [s for s in self._sessions.values() if not s.draining and s.free_slots > 0]
        if not open_sessions:
            return 0
        now = self._clock.now()
        jobs = await self._peek(open_sessions, now)
        if not jobs:
            return 0
        healthy_after = now - max(3 * self.config.heartbeat_s, self.config.lease_s)
        candidates = [
            s.candidate(healthy=s.last_heartbeat >= healthy_after) for s in self._sessions.values()
        ]
        decided = plan([(j.id, _demand(j), self._scorer(j.queue)) for j in jobs], candidates)
        for job_id, reason in decided.unplaced.items():
            self._unplaced[job_id] = reason
            self._unplaced.move_to_end(job_id)
        while len(self._unplaced) > MAX_EXPLAINED:
            self._unplaced.popitem(last=False)
        placed = 0
        for worker_id, ids in decided.assignments.items():
            session = self._sessions.get(worker_id)
            if session is None:
                continue
            claimed = await self._workers.claim_jobs(
                ClaimJobsParams(
                    worker_id,
                    ids,
                    self.config.lease_s,
                    self._clock.now(),
                    tenant=session.info.tenant,
                )
            )
            if not claimed:
                continue
            if self._sessions.get(worker_id) is not session:  # it left while we claimed
                for job in claimed:
                    self._completer.add(Completion(job.id, job.attempts, JobState.QUEUED))
                continue
            self._bus.publish([state_event(job, now) for job in claimed])
            self._observer.started(claimed, now)
            placed += await self._assign(session, claimed)
        self.placed_total += placed
        return placed

    async def _peek(self, open_sessions: list[Session], now: float) -> list[Job]:
        """The runnable jobs open workers could take: one read per tenant that workers are
        bound to (only that tenant's jobs), and one of every tenant's for shared workers."""
        scopes: dict[str | None, list[Session]] = {}
        for s in open_sessions:
            scopes.setdefault(s.info.tenant, []).append(s)
        found: dict[str, Job] = {}
        for tenant, sessions in scopes.items():
            kinds: set[str] = set()
            for s in sessions:
                kinds.update(s.info.kinds)
            free = sum(s.free_slots for s in sessions)
            window = min(MAX_WINDOW, max(4 * free, 100))
            for job in await self._workers.peek_runnable(
                PeekParams(now=now, limit=window, kinds=frozenset(kinds), tenant=tenant)
            ):
                found[job.id] = job
        jobs = list(found.values())
        if len(scopes) > 1:
            jobs.sort(key=lambda j: (-j.priority, j.id))
        return jobs

    async def _assign(self, session: Session, claimed: list[Job]) -> int:
        """Send the claimed jobs to ``session``'s worker, their secrets resolved."""
        handoffs = await self._hand_off(claimed)
        if self._sessions.get(session.id) is not session:  # it left while secrets were read
            for job in claimed:
                self._job_maskers.pop(job.id, None)
                if job.id in handoffs:
                    self._completer.add(Completion(job.id, job.attempts, JobState.QUEUED))
            return 0
        for job in claimed:
            self._unplaced.pop(job.id, None)
            handoff = handoffs.get(job.id)
            if handoff is None:
                continue  # failed: a secret it refers to cannot be handed out
            session.held[job.id] = job
            if handoff.mask:
                session.channel.assign(handoff.job, mask=handoff.mask)
            else:
                session.channel.assign(job)
        return len(claimed)

    async def _hand_off(self, claimed: list[Job]) -> dict[str, HandOff]:
        """Each claimed job as its worker gets it (secret references resolved); a job whose
        secrets cannot be handed out fails now, without retry, naming the secret."""
        if self._secrets is None:
            return {job.id: HandOff(job, ()) for job in claimed}
        out: dict[str, HandOff] = {}
        for job in claimed:
            try:
                handoff = await self._secrets.hand_off(job)
            except SecretError as e:
                self._completer.add(
                    Completion(job.id, job.attempts, JobState.FAILED, error=e.message)
                )
                continue
            except Exception:  # the store is away: put it back, the next round tries again
                log.exception("cannot read a job's secrets; job requeued", job_id=job.id)
                self._completer.add(Completion(job.id, job.attempts, JobState.QUEUED))
                continue
            if handoff.mask:
                self._job_maskers[job.id] = self._masker.with_secrets(handoff.mask)
                while len(self._job_maskers) > MAX_JOB_MASKERS:
                    self._job_maskers.popitem(last=False)
            out[job.id] = handoff
        return out

    async def _placement_loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                placed = await self.place_once()
            except Exception:
                log.exception("placement failed; retrying")
                placed = 0
            if placed:
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.poll_s):
                    await self._wake.wait()

    # -- leases, cancels, revocations ------------------------------------------------------------

    async def renew_leases(self) -> None:
        now = self._clock.now()
        silent_after = now - max(3 * self.config.heartbeat_s, self.config.lease_s)
        for session in list(self._sessions.values()):
            if session.last_heartbeat < silent_after:
                log.warning("worker stopped heartbeating", worker_id=session.id)
                session.channel.close("no heartbeat", retry=True)
                await self.disconnect(session)
                continue
            if not session.held:
                continue
            refs = [LeaseRef(j.id, j.attempts) for j in session.held.values()]
            held = set(
                await self._store.extend_leases(
                    ExtendLeasesParams(session.id, refs, self.config.lease_s, now)
                )
            )
            for ref in refs:
                if ref.job_id not in held and session.held.pop(ref.job_id, None) is not None:
                    session.channel.cancel(ref.job_id, ref.attempt, "lease lost")

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.lease_s / 3)
            try:
                await self.renew_leases()
            except Exception:
                log.exception("remote lease renewal failed; retrying")

    async def _cancel_listener(self) -> None:
        with contextlib.closing(self._bus.subscribe(where=_is_cancel)) as sub:
            while True:
                event = await sub.get()
                if event.job_id is not None:
                    self._forward_cancel(event.job_id)

    def _forward_cancel(self, job_id: str) -> None:
        for session in self._sessions.values():
            job = session.held.pop(job_id, None)
            if job is not None:
                session.channel.cancel(job_id, job.attempts, "cancelled")
                self.wake()

    async def _token_loop(self) -> None:
        """Revocations made through other servers; credential renewal before expiry."""
        renewed: dict[str, float] = {}
        while True:
            await asyncio.sleep(self.config.token_check_s)
            revoked: set[str] = set()
            for token_id in {s.token_id for s in self._sessions.values()}:
                try:
                    await self._tokens.active(token_id)
                except Unauthorized:
                    revoked.add(token_id)
                except Exception:
                    log.exception("cannot check a worker token; trying again")
            for session in list(self._sessions.values()):
                if session.token_id in revoked:
                    session.channel.close("worker token revoked", retry=False)
                    continue
                last = renewed.get(session.id, session.info.started_at)
                if self._clock.now() - last >= self._tokens.ttl_s / 3:
                    try:
                        credential = await self._tokens.renew(session.token_id)
                    except Exception:
                        log.exception("cannot renew a worker credential; trying again")
                        continue
                    session.channel.renew_credential(credential.text, credential.expires_at)
                    renewed[session.id] = self._clock.now()
            for worker_id in set(renewed) - set(self._sessions):
                del renewed[worker_id]


def _demand(job: Job) -> Demand:
    return Demand(kind=job.kind, labels=job.labels, resources=job_resources(job), tenant=job.tenant)


__all__ = ["ManagerConfig", "Registration", "ResultIn", "Session", "WorkerManager"]


def _is_cancel(event: Event) -> bool:
    return (
        event.type == "job.state"
        and event.data.get("state") == JobState.CANCELLED.value
        and event.job_id is not None
    )
