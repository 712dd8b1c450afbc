"""The remote worker agent (``faena worker``): connects out to a server over the worker
protocol, registers, runs its assignments on the shared :class:`~faena.worker.executor.Executor`
and streams their logs and results back.

- Reconnects with exponential backoff and full jitter; a refused token ends the agent with
  :class:`Refused` (never a tight retry loop).
- Log chunks, results and errors are masked (:mod:`faena.worker.masking`) before they leave.
- :meth:`Agent.drain` (SIGTERM): no new jobs, running ones get ``grace_s`` to finish, the rest
  are handed back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import structlog

from faena.domain.jobs import Job
from faena.domain.logs import LogStream
from faena.domain.workers import Capacity
from faena.ports.clock import Jitter, system_jitter
from faena.ports.executor import Executor, OutcomeLike
from faena.ports.telemetry import NULL_OBSERVER, JobObserver
from faena.protocol.convert import PROTOCOL_VERSION, STREAM_TO_PB, job_of
from faena.protocol.v1 import worker_pb2 as pb
from faena.protocol.v1 import worker_pb2_grpc as pb_grpc
from faena.worker.load import LoadProbe
from faena.worker.masking import SecretMasker, StreamMasker
from faena.worker.outcome import MAX_ERROR_LENGTH, NotJsonError, dump_json

log = structlog.get_logger("faena.agent")

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_LOG_BYTES = 256 * 1024  # one log chunk on the wire
MAX_PROGRESS_MESSAGE = 500  # characters; the server keeps no more
MAX_UNACKED_CHUNKS = 10_000  # log chunks kept for a resend; beyond, the oldest attempt's go


# The server's answers that no retry can change: a refused token, another protocol version.
_REFUSALS = (
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.FAILED_PRECONDITION,
)


class Refused(Exception):
    """The server refused this worker for good (wrong or revoked token)."""


@dataclass(slots=True)
class AgentConfig:
    server: str  # HOST:PORT
    token: str
    worker_id: str
    capacity: Capacity
    labels: dict[str, str] = field(default_factory=dict)
    tls_ca: bytes | None = None  # verify the server with this CA (PEM)
    tls_cert: bytes | None = None  # client certificate, for mutual TLS
    tls_key: bytes | None = None
    secrets: list[str] = field(default_factory=list)
    grace_s: float = 30.0
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0
    heartbeat_s: float = 2.0  # until the server says otherwise
    version: str = "0"


@dataclass(slots=True)
class _Running:
    job: Job
    task: asyncio.Task[None]
    stop: str | None = None  # "cancelled" | "lease" | "shutdown"


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        executor: Executor,
        *,
        probe: LoadProbe | None = None,
        jitter: Jitter = system_jitter,
        observer: JobObserver = NULL_OBSERVER,
    ) -> None:
        """``observer``: wraps each attempt (a tracing span continuing the submitter's trace,
        whose ``traceparent`` comes with the assignment)."""
        self.config = config
        self._observer = observer
        self._executor = executor
        self._probe = probe or LoadProbe()
        self._jitter = jitter
        self._masker = SecretMasker([*config.secrets, config.token])
        self._job_maskers: dict[str, SecretMasker] = {}  # jobs handed secrets by the server
        self._running: dict[str, _Running] = {}
        # Log chunks the server has not acknowledged, per (job, attempt), in order: sent again
        # after a reconnect (the server drops those it already took), so a cut stream loses no
        # output. Their jobs are announced in Register.running so the server takes them.
        self._unacked: dict[tuple[str, int], list[pb.WorkerMessage]] = {}
        self._unacked_jobs: dict[tuple[str, int], Job] = {}
        self._unacked_count = 0
        self._outbox: asyncio.Queue[pb.WorkerMessage] = asyncio.Queue()
        self._credential: tuple[str, float] | None = None
        self._draining = False
        self._stop = asyncio.Event()
        self._connected = asyncio.Event()
        self._heartbeat_s = config.heartbeat_s
        self._call: Any = None
        self.assigned_total = 0

    # -- public ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve, reconnect, until :meth:`drain` finishes. Raises :class:`Refused`."""
        failures = 0
        while not self._stop.is_set():
            registered = False
            try:
                registered = await self._session()
            except Refused:
                await self._cancel_all("refused")
                raise
            except grpc.aio.AioRpcError as e:
                if e.code() in _REFUSALS:
                    await self._cancel_all("refused")
                    raise Refused(e.details() or "worker token refused") from None
                log.warning(
                    "connection to server lost", server=self.config.server, error=_one_line(e)
                )
            except (OSError, ConnectionError) as e:
                log.warning("cannot reach the server", server=self.config.server, error=str(e))
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not self._stop.is_set() or (task is not None and task.cancelling()):
                    raise  # not our own call.cancel() at the end of a drain
            if self._stop.is_set():
                break
            failures = 0 if registered else failures + 1
            delay = self._backoff(failures)
            log.info("reconnecting", in_s=round(delay, 2))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop.wait()

    async def drain(self) -> None:
        """Take no new job, let running ones finish within ``grace_s``, hand back the rest."""
        if self._draining:
            return
        self._draining = True
        self._send(pb.WorkerMessage(drain=pb.Drain(grace_s=self.config.grace_s)))
        log.info("draining", running=len(self._running), grace_s=self.config.grace_s)
        if self._running:  # asyncio.wait, unlike gather, does not cancel them at the deadline
            await asyncio.wait(
                [r.task for r in self._running.values()], timeout=self.config.grace_s
            )
        await self._cancel_all("shutdown")
        # Give the writer a moment to deliver the last results.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                while not self._outbox.empty() and self._connected.is_set():  # noqa: ASYNC110 - no event for "written"
                    await asyncio.sleep(0.01)
        self._stop.set()
        call = self._call
        if call is not None:  # end the stream politely; the server then says goodbye
            with contextlib.suppress(Exception):
                await call.done_writing()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3.0):
                    while self._call is call:  # noqa: ASYNC110 - the session loop clears it
                        await asyncio.sleep(0.02)
            if self._call is call:
                call.cancel()

    @property
    def running(self) -> int:
        return len(self._running)

    # -- one connection --------------------------------------------------------------------------

    def _backoff(self, failures: int) -> float:
        cfg = self.config
        ceiling = min(cfg.backoff_max_s, cfg.backoff_min_s * 2.0 ** min(failures, 20))
        return ceiling / 2 + self._jitter() * ceiling / 2

    def _channel(self) -> Any:
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.keepalive_time_ms", 20_000),
            ("grpc.keepalive_timeout_ms", 10_000),
        ]
        cfg = self.config
        if cfg.tls_ca is None and cfg.tls_cert is None:
            return grpc.aio.insecure_channel(cfg.server, options=options)
        creds = grpc.ssl_channel_credentials(
            root_certificates=cfg.tls_ca, private_key=cfg.tls_key, certificate_chain=cfg.tls_cert
        )
        return grpc.aio.secure_channel(cfg.server, creds, options=options)

    async def _session(self) -> bool:
        """One connection; True once the server accepted the registration."""
        registered = False
        async with self._channel() as channel:
            stub: Any = pb_grpc.WorkerServiceStub(channel)  # type: ignore[no-untyped-call]
            credential = await self._fresh_credential(stub)
            call = stub.Connect(metadata=(("authorization", f"Bearer {credential}"),))
            self._call = call
            await call.write(pb.WorkerMessage(register=self._register()))
            self._resend_unacked()  # right behind Register, ahead of anything queued since
            writer = asyncio.get_running_loop().create_task(self._write_loop(call))
            beats = asyncio.get_running_loop().create_task(self._heartbeat_loop())
            try:
                async for msg in _messages(call):
                    which = msg.WhichOneof("body")
                    if which == "registered":
                        registered = True
                        self._connected.set()
                        self._heartbeat_s = msg.registered.heartbeat_s or self._heartbeat_s
                        log.info(
                            "connected",
                            server=self.config.server,
                            worker_id=self.config.worker_id,
                            slots=self.config.capacity.slots,
                        )
                    elif which == "disconnect":
                        if not msg.disconnect.retry:
                            raise Refused(msg.disconnect.reason)
                        if not self._stop.is_set():
                            log.warning(
                                "server closed the connection", reason=msg.disconnect.reason
                            )
                        break
                    else:
                        self._on_message(msg)
            finally:
                self._connected.clear()
                self._call = None
                for task in (writer, beats):
                    task.cancel()
                await asyncio.gather(writer, beats, return_exceptions=True)
        return registered

    async def _fresh_credential(self, stub: Any) -> str:
        now = time.time()
        if self._credential is not None and self._credential[1] - now > 60:
            return self._credential[0]
        reply = await stub.Authenticate(
            pb.AuthRequest(token=self.config.token, worker_id=self.config.worker_id), timeout=10
        )
        self._credential = (reply.credential, reply.expires_at)
        return str(reply.credential)

    def _register(self) -> pb.Register:
        cap = self.config.capacity
        return pb.Register(
            worker_id=self.config.worker_id,
            kinds=sorted(self._executor.kinds()),
            labels=self.config.labels,
            capacity=pb.Capacity(slots=cap.slots, cpu_cores=cap.cpu_cores, memory_mb=cap.memory_mb),
            version=self.config.version,
            host=socket.gethostname(),
            running=[
                *(
                    pb.RunningJob(job_id=r.job.id, attempt=r.job.attempts, tenant=r.job.tenant)
                    for r in self._running.values()
                    if r.stop is None
                ),
                *(  # finished meanwhile, output not all taken: the server must take it still
                    pb.RunningJob(job_id=job.id, attempt=job.attempts, tenant=job.tenant)
                    for job in self._unacked_jobs.values()
                    if job.id not in self._running
                ),
            ],
            protocol_version=PROTOCOL_VERSION,
        )

    async def _write_loop(self, call: Any) -> None:
        while True:
            msg = await self._outbox.get()
            try:
                await call.write(msg)
            except Exception:
                # The stream broke: keep the message for the next connection.
                self._requeue_front(msg)
                raise

    def _requeue_front(self, msg: pb.WorkerMessage) -> None:
        rest: list[pb.WorkerMessage] = []
        while not self._outbox.empty():
            rest.append(self._outbox.get_nowait())
        for m in [msg, *rest]:
            self._outbox.put_nowait(m)

    async def _heartbeat_loop(self) -> None:
        while True:
            cpu, memory = self._probe.sample()
            self._send(
                pb.WorkerMessage(
                    heartbeat=pb.Heartbeat(
                        cpu_percent=cpu,
                        memory_percent=memory,
                        running=[
                            pb.RunningJob(job_id=r.job.id, attempt=r.job.attempts)
                            for r in self._running.values()
                        ],
                        ts=time.time(),
                    )
                )
            )
            await asyncio.sleep(self._heartbeat_s)

    def _send(self, msg: pb.WorkerMessage) -> None:
        self._outbox.put_nowait(msg)

    # -- messages from the server ----------------------------------------------------------------

    def _on_message(self, msg: pb.ServerMessage) -> None:
        which = msg.WhichOneof("body")
        if which == "assignment":
            self._assigned(msg.assignment)
        elif which == "cancel":
            self._stop_job(msg.cancel.job_id, msg.cancel.attempt, "cancelled")
        elif which == "log_ack":
            self._acked(msg.log_ack.job_id, msg.log_ack.attempt, msg.log_ack.seq)
        elif which == "credential":
            self._credential = (msg.credential.credential, msg.credential.expires_at)
        elif which == "drain":
            asyncio.get_running_loop().create_task(self.drain())

    def _assigned(self, a: pb.Assignment) -> None:
        if self._draining or len(self._running) >= self.config.capacity.slots:
            reason = "draining" if self._draining else "no free slot"
            self._send(
                pb.WorkerMessage(
                    ack=pb.Ack(job_id=a.job_id, attempt=a.attempt, accepted=False, reason=reason)
                )
            )
            return
        job = job_of(a, time.time())
        if a.mask:
            self._job_maskers[job.id] = self._masker.with_secrets(a.mask)
        self.assigned_total += 1
        task = asyncio.get_running_loop().create_task(self._run(job), name=f"job-{job.id}")
        self._running[job.id] = _Running(job, task)
        self._send(pb.WorkerMessage(ack=pb.Ack(job_id=a.job_id, attempt=a.attempt, accepted=True)))

    def _stop_job(self, job_id: str, attempt: int, reason: str) -> None:
        entry = self._running.get(job_id)
        if entry is not None and entry.job.attempts == attempt and entry.stop is None:
            log.info("stopping job", job_id=job_id, reason=reason)
            entry.stop = reason
            entry.task.cancel()

    async def _cancel_all(self, reason: str) -> None:
        for entry in list(self._running.values()):
            if entry.stop is None:
                entry.stop = reason
                entry.task.cancel()
        if self._running:
            await asyncio.gather(
                *(e.task for e in list(self._running.values())), return_exceptions=True
            )

    # -- running one job -------------------------------------------------------------------------

    async def _run(self, job: Job) -> None:
        sink = _MaskingSink(self, job)
        started = time.monotonic()
        outcome: OutcomeLike | None = None
        try:
            try:
                with self._observer.attempt(job) as note_outcome:
                    outcome = await self._executor.run(job, sink)
                    note_outcome(outcome.succeeded, outcome.error)
            except asyncio.CancelledError:
                entry = self._running.get(job.id)
                sink.flush()
                if entry is not None and entry.stop == "shutdown":
                    sink.log(LogStream.SYSTEM, "worker shut down; job handed back to the queue\n")
                    sink.flush()
                    self._result(job, handed_back=True)
                return
            except Exception as exc:
                log.exception("executor error", job_id=job.id)
                sink.flush()
                self._result(job, error=f"internal executor error: {type(exc).__name__}")
                return
            sink.flush()
            self._finish(job, outcome, time.monotonic() - started)
        finally:
            self._running.pop(job.id, None)
            self._job_maskers.pop(job.id, None)

    def _finish(self, job: Job, outcome: OutcomeLike, run_s: float) -> None:
        try:
            result_json = b"" if outcome.result is None else dump_json(outcome.result)
        except NotJsonError as e:
            self._result(job, error=f"result is not JSON-serializable: {e}", retryable=False)
            return
        masker = self.masker_for(job.id)
        masked = masker.mask(result_json.decode()).encode() if result_json else b""
        self._send(
            pb.WorkerMessage(
                result=pb.Result(
                    job_id=job.id,
                    attempt=job.attempts,
                    tenant=job.tenant,
                    succeeded=outcome.succeeded,
                    result_json=masked,
                    error=masker.mask(outcome.error or "")[:MAX_ERROR_LENGTH],
                    retryable=outcome.retryable,
                    run_s=run_s,
                )
            )
        )

    def _result(
        self, job: Job, *, error: str = "", retryable: bool = True, handed_back: bool = False
    ) -> None:
        self._send(
            pb.WorkerMessage(
                result=pb.Result(
                    job_id=job.id,
                    attempt=job.attempts,
                    tenant=job.tenant,
                    succeeded=False,
                    error=self.masker_for(job.id).mask(error),
                    retryable=retryable,
                    handed_back=handed_back,
                )
            )
        )

    def _log(self, job: Job, seq: int, stream: LogStream, data: str) -> None:
        msg = pb.WorkerMessage(
            log=pb.LogChunk(
                job_id=job.id,
                attempt=job.attempts,
                tenant=job.tenant,
                seq=seq,
                stream=STREAM_TO_PB[stream],
                data=data.encode("utf-8", "replace"),
                ts=time.time(),
            )
        )
        key = (job.id, job.attempts)
        self._unacked.setdefault(key, []).append(msg)
        self._unacked_jobs[key] = job
        self._unacked_count += 1
        while self._unacked_count > MAX_UNACKED_CHUNKS and self._unacked:
            oldest = next(iter(self._unacked))
            dropped = self._unacked.pop(oldest)
            self._unacked_jobs.pop(oldest, None)
            self._unacked_count -= len(dropped)
            log.warning("too much unacknowledged output; forgetting some", job_id=oldest[0])
        self._send(msg)

    def _acked(self, job_id: str, attempt: int, seq: int) -> None:
        key = (job_id, attempt)
        kept = self._unacked.get(key)
        if kept is None:
            return
        rest = [m for m in kept if m.log.seq > seq]
        self._unacked_count -= len(kept) - len(rest)
        if rest:
            self._unacked[key] = rest
        else:
            del self._unacked[key]
            self._unacked_jobs.pop(key, None)

    def _resend_unacked(self) -> None:
        """After a reconnect: every unacknowledged chunk goes first, in order, then whatever
        waited in the outbox (results after their output); the server drops duplicates."""
        if not self._unacked:
            return
        again = [m for kept in self._unacked.values() for m in kept]
        queued: list[pb.WorkerMessage] = []
        while not self._outbox.empty():
            queued.append(self._outbox.get_nowait())
        resent = {id(m) for m in again}
        for m in [*again, *(m for m in queued if id(m) not in resent)]:
            self._outbox.put_nowait(m)
        log.info("sending unacknowledged output again", chunks=len(again))

    @property
    def masker(self) -> SecretMasker:
        return self._masker

    def masker_for(self, job_id: str) -> SecretMasker:
        """The worker's masker, plus the secrets the server resolved into this job."""
        return self._job_maskers.get(job_id, self._masker)


class _MaskingSink:
    """The executor's sink on an agent: masks each stream, numbers chunks, queues them."""

    def __init__(self, agent: Agent, job: Job) -> None:
        self._agent = agent
        self._job = job
        self._seq = 0
        self._streams: dict[LogStream, StreamMasker] = {}

    def log(self, stream: LogStream, data: str) -> None:
        if not data:
            return
        stream = LogStream(stream)
        masker = self._streams.get(stream)
        if masker is None:
            masker = self._streams[stream] = StreamMasker(self._agent.masker_for(self._job.id))
        self._emit(stream, masker.feed(data))

    def flush(self) -> None:
        for stream, masker in self._streams.items():
            self._emit(stream, masker.flush())

    def progress(self, fraction: float, message: str = "") -> None:
        job = self._job
        text = self._agent.masker_for(job.id).mask(message)[:MAX_PROGRESS_MESSAGE]
        self._agent._send(
            pb.WorkerMessage(
                progress=pb.Progress(
                    job_id=job.id,
                    attempt=job.attempts,
                    tenant=job.tenant,
                    fraction=fraction,
                    message=text,
                )
            )
        )

    def _emit(self, stream: LogStream, text: str) -> None:
        for start in range(0, len(text), MAX_LOG_BYTES // 4):
            self._agent._log(self._job, self._seq, stream, text[start : start + MAX_LOG_BYTES // 4])
            self._seq += 1


async def _messages(call: Any) -> AsyncIterator[pb.ServerMessage]:
    while True:
        msg = await call.read()
        if msg is grpc.aio.EOF:
            return
        yield msg


def _one_line(error: grpc.aio.AioRpcError) -> str:
    return f"{error.code().name}: {' '.join(str(error.details() or '').split())}"
