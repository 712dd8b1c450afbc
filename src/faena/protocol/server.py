"""The worker protocol's server side: gRPC (grpc.aio) beside the HTTP API.

One ``Connect`` stream per worker. The servicer checks the credential in the ``authorization``
metadata, reads ``Register`` first, then hands every message to the
:class:`~faena.services.worker_manager.WorkerManager` and writes what the manager queues on the
worker's :class:`QueueChannel`. A malformed or oversized message ends that stream only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import orjson
import structlog

from faena.domain.errors import (
    FaenaError,
    Forbidden,
    Unauthorized,
    Unavailable,
    ValidationError,
)
from faena.domain.jobs import Job
from faena.domain.logs import LogStream
from faena.domain.workers import Capacity
from faena.protocol.convert import PROTOCOL_VERSION, STREAM_FROM_PB, assignment, loads_result
from faena.protocol.v1 import worker_pb2 as pb
from faena.protocol.v1 import worker_pb2_grpc as pb_grpc
from faena.services.worker_manager import Registration, ResultIn, Session, WorkerManager
from faena.services.worker_tokens import WorkerTokens

log = structlog.get_logger("faena.grpc")

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
REGISTER_TIMEOUT_S = 10.0
MAX_KINDS = 10_000
MAX_LABELS = 100


class _Closed:
    def __init__(self, reason: str, retry: bool) -> None:
        self.reason = reason
        self.retry = retry


class QueueChannel:
    """A worker's outgoing messages, written by the stream's response generator."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[pb.ServerMessage | _Closed] = asyncio.Queue()
        self.closed = False

    def assign(self, job: Job, mask: Sequence[str] = ()) -> None:
        self.queue.put_nowait(assignment(job, mask))

    def log_ack(self, job_id: str, attempt: int, seq: int) -> None:
        self.queue.put_nowait(
            pb.ServerMessage(log_ack=pb.LogAck(job_id=job_id, attempt=attempt, seq=seq))
        )

    def cancel(self, job_id: str, attempt: int, reason: str) -> None:
        self.queue.put_nowait(
            pb.ServerMessage(cancel=pb.Cancel(job_id=job_id, attempt=attempt, reason=reason))
        )

    def renew_credential(self, credential: str, expires_at: float) -> None:
        self.queue.put_nowait(
            pb.ServerMessage(credential=pb.Credential(credential=credential, expires_at=expires_at))
        )

    def close(self, reason: str, *, retry: bool) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(_Closed(reason, retry))


class ProtocolMismatch(ValidationError):
    """The worker speaks another version of the protocol: retrying cannot help."""


def _bearer(metadata: dict[str, Any]) -> str:
    scheme, _, credential = str(metadata.get("authorization", "")).partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise Unauthorized("no worker credential: call Authenticate with the token first")
    return credential.strip()


def _registration(first: pb.WorkerMessage) -> Registration:
    if first.WhichOneof("body") != "register":
        raise ValidationError("the first message must be register")
    msg = first.register
    if msg.protocol_version != PROTOCOL_VERSION:
        raise ProtocolMismatch(
            f"worker speaks protocol version {msg.protocol_version}, this server speaks "
            f"{PROTOCOL_VERSION}: run a faena worker of the server's release"
        )
    if not msg.worker_id or len(msg.worker_id) > 200:
        raise ValidationError("register: worker_id must be 1 to 200 characters")
    if len(msg.kinds) > MAX_KINDS or len(msg.labels) > MAX_LABELS:
        raise ValidationError("register: too many kinds or labels")
    if msg.capacity.slots < 1 or msg.capacity.slots > 100_000:
        raise ValidationError("register: capacity.slots must be between 1 and 100000")
    return Registration(
        worker_id=msg.worker_id,
        kinds=frozenset(msg.kinds),
        labels=dict(msg.labels),
        capacity=Capacity(
            slots=msg.capacity.slots,
            cpu_cores=max(0.0, msg.capacity.cpu_cores),
            memory_mb=max(0, msg.capacity.memory_mb),
        ),
        version=msg.version[:100],
        host=msg.host[:200],
        running=tuple((r.job_id, r.attempt, r.tenant) for r in msg.running),
    )


class WorkerServicer(pb_grpc.WorkerServiceServicer):
    def __init__(self, manager: WorkerManager, tokens: WorkerTokens, lease_s: float) -> None:
        self._manager = manager
        self._tokens = tokens
        self._lease_s = lease_s

    async def Authenticate(self, request: pb.AuthRequest, context: Any) -> pb.Credential:
        try:
            credential = await self._tokens.exchange(request.token)
        except Unauthorized as e:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, e.message)
        except FaenaError as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, e.message)
        return pb.Credential(credential=credential.text, expires_at=credential.expires_at)

    async def Connect(
        self, request_iterator: AsyncIterator[pb.WorkerMessage], context: Any
    ) -> AsyncIterator[pb.ServerMessage]:
        metadata = dict(context.invocation_metadata() or ())
        try:
            token = await self._tokens.verify(_bearer(metadata))
        except Unauthorized as e:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, e.message)
            return
        try:
            async with asyncio.timeout(REGISTER_TIMEOUT_S):
                first = await anext(aiter(request_iterator))
            registration = _registration(first)
        except (TimeoutError, StopAsyncIteration):
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "no register message")
            return
        except ProtocolMismatch as e:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, e.message)
            return
        except ValidationError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, e.message)
            return
        channel = QueueChannel()
        try:
            session = await self._manager.connect(
                registration, token.id, channel, tenant=token.serves_tenant
            )
        except Forbidden as e:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, e.message)
            return
        reader = asyncio.get_running_loop().create_task(
            self._read(request_iterator, session, channel), name=f"worker-{session.id}"
        )
        try:
            yield pb.ServerMessage(
                registered=pb.Registered(
                    worker_id=session.id,
                    server=self._manager.config.server_id,
                    heartbeat_s=self._manager.config.heartbeat_s,
                    lease_s=self._lease_s,
                )
            )
            while True:
                item = await channel.queue.get()
                if isinstance(item, _Closed):
                    yield pb.ServerMessage(
                        disconnect=pb.Disconnect(reason=item.reason, retry=item.retry)
                    )
                    break
                yield item
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            await self._manager.disconnect(session)

    async def _read(
        self,
        request_iterator: AsyncIterator[pb.WorkerMessage],
        session: Session,
        channel: QueueChannel,
    ) -> None:
        try:
            async for msg in request_iterator:
                await self._handle(msg, session)
        except (ValidationError, orjson.JSONDecodeError) as e:
            log.warning("bad message from worker; closing its stream", worker_id=session.id)
            channel.close(f"bad message: {e}", retry=True)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.info("worker stream ended", worker_id=session.id)
        channel.close("stream ended", retry=True)

    async def _handle(self, msg: pb.WorkerMessage, session: Session) -> None:
        manager = self._manager
        which = msg.WhichOneof("body")
        if which == "heartbeat":
            await manager.heartbeat(
                session, msg.heartbeat.cpu_percent, msg.heartbeat.memory_percent
            )
        elif which == "log":
            c = msg.log
            manager.log_chunk(
                session,
                job_id=c.job_id,
                attempt=c.attempt,
                seq=c.seq,
                stream=STREAM_FROM_PB.get(c.stream, LogStream.STDOUT),
                data=c.data.decode("utf-8", "replace"),
                ts=c.ts,
            )
        elif which == "result":
            r = msg.result
            await manager.result(
                session,
                ResultIn(
                    job_id=r.job_id,
                    attempt=r.attempt,
                    tenant=r.tenant,
                    succeeded=r.succeeded,
                    result=loads_result(r.result_json),
                    error=r.error or None,
                    retryable=r.retryable,
                    handed_back=r.handed_back,
                    run_s=r.run_s or None,
                ),
            )
        elif which == "ack":
            a = msg.ack
            manager.ack(session, a.job_id, a.attempt, a.accepted, a.reason)
        elif which == "progress":
            p = msg.progress
            manager.progress(session, p.job_id, p.attempt, p.fraction, p.message)
        elif which == "drain":
            await manager.drain(session)
        else:
            raise ValidationError(f"unexpected message {which!r}")


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None  # mutual TLS: workers must present a certificate it signed


class GrpcWorkerServer:
    """The worker protocol's listener; ``port`` is the bound port once started."""

    def __init__(
        self,
        manager: WorkerManager,
        tokens: WorkerTokens,
        *,
        host: str,
        port: int,
        lease_s: float,
        tls: TlsFiles | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._servicer = WorkerServicer(manager, tokens, lease_s)
        self._host = host
        self._wanted_port = port
        self._tls = tls
        self._max = max_message_bytes
        self._server: Any = None
        self.port = 0

    async def start(self) -> None:
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", self._max),
                ("grpc.max_send_message_length", self._max),
                ("grpc.keepalive_time_ms", 20_000),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.so_reuseport", 0),
            ]
        )
        generated: Any = pb_grpc  # generated code has no annotations
        generated.add_WorkerServiceServicer_to_server(self._servicer, server)
        address = (
            f"[{self._host}]:{self._wanted_port}"
            if ":" in self._host
            else (f"{self._host}:{self._wanted_port}")
        )
        try:
            if self._tls is None:
                port = server.add_insecure_port(address)
            else:
                port = server.add_secure_port(address, server_credentials(self._tls))
        except (RuntimeError, OSError) as e:
            raise Unavailable(f"cannot listen for workers on {address}: {e}") from None
        if not port:
            raise Unavailable(f"cannot listen for workers on {address}: the port is in use")
        await server.start()
        self._server = server
        self.port = port

    async def stop(self, grace_s: float = 2.0) -> None:
        if self._server is not None:
            await self._server.stop(grace_s)
            self._server = None


def server_credentials(tls: TlsFiles) -> Any:
    try:
        key, cert = tls.key.read_bytes(), tls.cert.read_bytes()
        client_ca = tls.client_ca.read_bytes() if tls.client_ca is not None else None
    except OSError as e:
        raise ValidationError(f"cannot read a TLS file: {e}") from None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
