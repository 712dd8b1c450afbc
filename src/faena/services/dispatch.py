"""The local worker pool: claims runnable jobs in batches, runs them on an executor, renews
their leases, records outcomes in batches, and hands unfinished jobs back on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from faena.domain.events import Event
from faena.domain.jobs import Job, JobSpec, JobState, labels_match
from faena.domain.logs import LogStream
from faena.domain.retry import after_failure
from faena.domain.secrets import SecretError
from faena.ports.bus import EventBus
from faena.ports.clock import Clock, Jitter, system_jitter
from faena.ports.executor import Executor, OutcomeLike
from faena.ports.store import (
    ClaimParams,
    Completion,
    ExtendLeasesParams,
    JobStore,
    LeaseRef,
    StartNow,
)
from faena.ports.telemetry import NULL_OBSERVER, JobObserver
from faena.services.breaker import log_store_error
from faena.services.completions import Completer
from faena.services.logs import JobLogSink, LogWriter
from faena.services.orchestrator import state_event
from faena.services.secret_masking import MaskedSink, mask_outcome
from faena.services.secrets import SecretService
from faena.worker.masking import SecretMasker

log = structlog.get_logger("faena.pool")


class StopReason(enum.Enum):
    CANCELLED = "cancelled"  # the job was cancelled: the store already says so
    LEASE_LOST = "lease lost"  # another worker may own it now: record nothing
    SHUTDOWN = "shutdown"  # hand the job back to the queue


@dataclass(slots=True)
class PoolConfig:
    worker_id: str
    concurrency: int = 100
    lease_s: float = 30.0
    claim_batch: int = 500
    poll_s: float = 1.0  # fallback wake-up when nothing notifies (scheduled jobs, other servers)
    queues: frozenset[str] | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Running:
    job: Job
    task: asyncio.Task[None]
    stop: StopReason | None = None


class LocalPool:
    def __init__(
        self,
        store: JobStore,
        *,
        bus: EventBus,
        clock: Clock,
        executor: Executor,
        logs: LogWriter,
        completer: Completer,
        config: PoolConfig,
        jitter: Jitter = system_jitter,
    ) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._executor = executor
        self._logs = logs
        self._completer = completer
        self.config = config
        self._jitter = jitter
        self._running: dict[str, _Running] = {}
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self._next_due: float | None = None
        self._waiting_for_work = False  # the last claim found less than it had room for
        self._reserved = 0  # slots promised to submits in flight (reserve_starts)
        self._observer: JobObserver = NULL_OBSERVER
        self._secrets: SecretService | None = None

    def set_secrets(self, secrets: SecretService) -> None:
        """Resolve ``{{ secrets.NAME }}`` in payloads as jobs are handed to the executor."""
        self._secrets = secrets

    def set_observer(self, observer: JobObserver) -> None:
        """Report claims and attempts to ``observer`` (metrics, a span per attempt)."""
        self._observer = observer

    @property
    def alive(self) -> bool:
        """The claim, heartbeat and cancel loops are running (for /readyz)."""
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._claim_loop(), name="pool-claim"),
            loop.create_task(self._heartbeat_loop(), name="pool-heartbeat"),
            loop.create_task(self._event_listener(), name="pool-events"),
        ]

    def wake(self) -> None:
        self._wake.set()

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def waiting_for_work(self) -> bool:
        """The last claim found fewer runnable jobs than it had room for; none since."""
        return self._waiting_for_work

    async def wait_idle(self) -> None:
        """Until no job runs here (including jobs being stopped after a cancel)."""
        await self._idle.wait()

    async def stop(self, grace_s: float = 30.0) -> None:
        """Take no new work, give running jobs ``grace_s`` to finish, hand back the rest."""
        self._stopping = True
        self._wake.set()
        self._slot_freed.set()
        if self._running:
            log.info("draining", running=len(self._running), grace_s=grace_s)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace_s):
                    await self._idle.wait()
        for entry in list(self._running.values()):
            entry.stop = StopReason.SHUTDOWN
            entry.task.cancel()
        if self._running:
            await asyncio.gather(
                *(e.task for e in list(self._running.values())), return_exceptions=True
            )
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._logs.drain()
        await self._completer.drain()

    # -- claiming -------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        cfg = self.config
        while not self._stopping:
            free = cfg.concurrency - len(self._running) - self._reserved
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                await asyncio.sleep(0)  # let a few more finish: claim in bigger batches
                continue
            want = min(free, cfg.claim_batch)
            self._wake.clear()
            try:
                jobs = await self._store.claim(
                    ClaimParams(
                        worker_id=cfg.worker_id,
                        limit=want,
                        lease_s=cfg.lease_s,
                        now=self._clock.now(),
                        kinds=self._executor.kinds(),
                        queues=cfg.queues,
                        worker_labels=cfg.labels,
                    )
                )
            except Exception as e:
                log_store_error(log, "claim failed; retrying", e, in_s=cfg.poll_s)
                await self._sleep_or_wake(cfg.poll_s)
                continue
            if jobs:
                self._start(jobs)
            if len(jobs) < want:
                await self._sleep_until_due()

    def note_run_at(self, run_at: float) -> None:
        """A job becomes due at ``run_at``: claim again then, not at the next poll."""
        if self._next_due is None or run_at < self._next_due:
            self._next_due = run_at
            self._wake.set()

    async def _sleep_until_due(self) -> None:
        """Sleep until woken, the earliest known ``run_at``, or the fallback poll. The earliest
        ``run_at`` is learned from this process's events (no store read per claim); the store
        is asked only after a poll that nothing woke (jobs scheduled by other servers)."""
        now = self._clock.now()
        if self._next_due is not None and self._next_due <= now:
            self._next_due = None  # the claim that just ran has seen it
        timeout = self.config.poll_s
        if self._next_due is not None:
            timeout = min(timeout, self._next_due - now)
        self._waiting_for_work = True
        try:
            woken = await self._sleep_or_wake(timeout)
        finally:
            self._waiting_for_work = False
        if woken or self._next_due is not None:
            return
        try:
            next_at = await self._store.next_run_at()
        except Exception:
            return
        if next_at is not None:
            self.note_run_at(next_at)

    async def _sleep_or_wake(self, seconds: float) -> bool:
        """True when woken before ``seconds`` passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, seconds)):
                await self._wake.wait()
                return True
        return False

    # -- submitted straight to a free slot ----------------------------------------------

    def reserve_starts(
        self, specs: Sequence[JobSpec], ids: Sequence[str], now: float
    ) -> StartNow | None:
        """The jobs of a submit about to be stored that this pool takes at once, written
        already claimed in the submit's own transaction: one commit instead of a submit, a
        wake-up and a claim. Only while the claim loop waits for work (its last claim found
        fewer runnable jobs than it had room for, so none waits ahead of these) and only jobs
        a claim here would take now: a kind this executor runs, a queue and labels this pool
        serves, no delay and no concurrency key (those are counted by the claim). The slots
        stay promised until :meth:`settle_starts`."""
        if not self._waiting_for_work or self._stopping:
            return None
        free = self.config.concurrency - len(self._running) - self._reserved
        if free <= 0:
            return None
        kinds = self._executor.kinds()
        queues, labels = self.config.queues, self.config.labels
        picked: list[str] = []
        for job_id, spec in zip(ids, specs, strict=True):
            if (
                spec.concurrency_key is None
                and (spec.run_at is None or spec.run_at <= now)
                and (kinds is None or spec.kind in kinds)
                and (queues is None or spec.queue in queues)
                and labels_match(spec.labels, labels)
            ):
                picked.append(job_id)
                if len(picked) == free:
                    break
        if not picked:
            return None
        self._reserved += len(picked)
        return StartNow(self.config.worker_id, self.config.lease_s, frozenset(picked))

    def settle_starts(self, start: StartNow, jobs: Sequence[Job]) -> None:
        """The submit ``start`` was reserved for is over: run ``jobs``, those it stored
        started (none when it failed), and free the rest of the promised slots. The submit
        announces their state itself."""
        self._reserved -= len(start.ids)
        if jobs and self._stopping:  # shut down meanwhile: hand them back to the queue
            for job in jobs:
                self._completer.add(
                    Completion(job_id=job.id, attempt=job.attempts, state=JobState.QUEUED)
                )
        elif jobs:
            self._start(list(jobs), announce=False)
        if len(jobs) < len(start.ids):
            self._slot_freed.set()

    def _start(self, jobs: list[Job], *, announce: bool = True) -> None:
        loop = asyncio.get_running_loop()
        now = self._clock.now()
        if announce:
            self._bus.publish([state_event(job, now) for job in jobs])
        self._observer.started(jobs, now)
        self._idle.clear()
        for job in jobs:
            task = loop.create_task(self._run(job))
            self._running[job.id] = _Running(job, task)

    # -- running --------------------------------------------------------------------------

    async def _run(self, job: Job) -> None:
        sink = self._logs.sink(job)
        outcome: OutcomeLike
        try:
            try:
                with self._observer.attempt(job) as note_outcome:
                    outcome = await self._execute(job, sink)
                    note_outcome(outcome.succeeded, outcome.error)
            except asyncio.CancelledError:
                entry = self._running.get(job.id)
                if entry is not None and entry.stop is StopReason.SHUTDOWN:
                    sink.log(LogStream.SYSTEM, "worker shut down; job handed back to the queue")
                    await self._logs.drain()
                    self._completer.add(
                        Completion(job_id=job.id, attempt=job.attempts, state=JobState.QUEUED)
                    )
                elif sink.wrote:
                    await self._logs.drain()
                return
            except Exception as exc:  # the executor itself broke: fail the attempt, loudly
                log.exception("executor error", job_id=job.id)
                outcome = _Failure(f"internal executor error: {type(exc).__name__}")
            completion = self._completion(job, outcome, sink)
            if sink.wrote:
                await self._logs.drain()  # a job's output is stored before its outcome
            self._completer.add(completion)
        finally:
            self._running.pop(job.id, None)
            self._slot_freed.set()
            if not self._running:
                self._idle.set()

    async def _execute(self, job: Job, sink: JobLogSink) -> OutcomeLike:
        """Run ``job`` on the executor, with its secret references resolved in the copy the
        executor gets, and the values masked in its logs, result and error."""
        if self._secrets is None:
            return await self._executor.run(job, sink)
        try:
            handoff = await self._secrets.hand_off(job)
        except SecretError as e:  # unknown or unreadable: a retry cannot fix it
            return _Failure(e.message, retryable=False)
        except Exception as e:  # the store is away: the next attempt may find it back
            log_store_error(log, "cannot read the job's secrets", e, job_id=job.id)
            return _Failure(f"cannot read the job's secrets: {type(e).__name__}")
        if not handoff.mask:
            return await self._executor.run(handoff.job, sink)
        masker = SecretMasker(handoff.mask)
        masked = MaskedSink(sink, masker)
        try:
            outcome = await self._executor.run(handoff.job, masked)
        finally:
            masked.flush()
        return mask_outcome(outcome, masker)

    def _completion(self, job: Job, outcome: OutcomeLike, sink: JobLogSink) -> Completion:
        if outcome.succeeded:
            return Completion(
                job_id=job.id, attempt=job.attempts, state=JobState.SUCCEEDED, result=outcome.result
            )
        now = self._clock.now()
        if outcome.retryable:
            state, run_at = after_failure(job, now, self._jitter)
        else:
            state, run_at = JobState.FAILED, None
        if state is not JobState.FAILED:
            wait = f" in {run_at - now:.1f}s" if run_at is not None else ""
            sink.log(
                LogStream.SYSTEM,
                f"attempt {job.attempts}/{job.max_attempts} failed: {outcome.error}; "
                f"retrying{wait}\n",
            )
        return Completion(
            job_id=job.id,
            attempt=job.attempts,
            state=state,
            result=outcome.result,
            error=outcome.error,
            run_at=run_at,
        )

    # -- leases and cancellation ----------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        interval = self.config.lease_s / 3
        while True:
            await asyncio.sleep(interval)
            if not self._running:
                continue
            refs = [LeaseRef(e.job.id, e.job.attempts) for e in self._running.values()]
            try:
                held = set(
                    await self._store.extend_leases(
                        ExtendLeasesParams(
                            worker_id=self.config.worker_id,
                            leases=refs,
                            lease_s=self.config.lease_s,
                            now=self._clock.now(),
                        )
                    )
                )
            except Exception as e:
                log_store_error(log, "lease renewal failed; retrying", e, in_s=interval)
                continue
            for ref in refs:
                if ref.job_id not in held:
                    self._stop_job(ref.job_id, StopReason.LEASE_LOST)

    async def _event_listener(self) -> None:
        with contextlib.closing(self._bus.subscribe(where=_cancel_or_scheduled)) as sub:
            while True:
                event = await sub.get()
                state = event.data.get("state")
                if state == JobState.CANCELLED.value:
                    self._stop_job(event.job_id or "", StopReason.CANCELLED)
                else:  # scheduled, with its due time
                    self.note_run_at(float(event.data["run_at"]))

    def _stop_job(self, job_id: str, reason: StopReason) -> None:
        entry = self._running.get(job_id)
        if entry is not None and entry.stop is None:
            log.info("stopping job", job_id=job_id, reason=reason.value)
            entry.stop = reason
            entry.task.cancel()


def _cancel_or_scheduled(event: Event) -> bool:
    """What the pool's listener acts on: cancels, and retries or delays with a due time."""
    if event.type != "job.state" or event.job_id is None:
        return False
    state = event.data.get("state")
    return state == JobState.CANCELLED.value or (
        state == JobState.SCHEDULED.value and event.data.get("run_at") is not None
    )


@dataclass(frozen=True, slots=True)
class _Failure:
    error: str
    succeeded: bool = False
    result: object = None
    retryable: bool = True
