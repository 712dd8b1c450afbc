"""The worker protocol in one process: a real gRPC server (TLS, mutual TLS), real agents and
raw protocol clients, on the in-memory store."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from faena.bootstrap import Runtime, build_runtime
from faena.config import Settings
from faena.domain.jobs import JobState
from faena.domain.workers import Capacity
from faena.protocol.convert import PROTOCOL_VERSION
from faena.protocol.v1 import worker_pb2 as pb
from faena.protocol.v1 import worker_pb2_grpc as pb_grpc
from faena.services.orchestrator import JobRequest
from faena.worker.agent import Agent, AgentConfig
from faena.worker.executor import Executor
from faena.worker.registry import TaskRegistry

ADMIN = "fk_worker_protocol_admin_key_0123456789"


# -- certificates ------------------------------------------------------------------------------


@dataclass
class Pem:
    cert: bytes
    key: bytes


def _issue(subject: str, issuer: Pem | None, *, ca: bool = False) -> Pem:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    if issuer is None:
        issuer_name, signer = name, key
    else:
        issuer_cert = x509.load_pem_x509_certificate(issuer.cert)
        issuer_name = issuer_cert.subject
        signer = serialization.load_pem_private_key(issuer.key, None)  # type: ignore[assignment]
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    cert = builder.sign(signer, hashes.SHA256())
    return Pem(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


@dataclass
class Pki:
    ca: Pem
    server: Pem
    client: Pem
    files: dict[str, Path]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = _issue("faena test CA", None, ca=True)
    server = _issue("localhost", ca)
    client = _issue("worker-1", ca)
    root = tmp_path_factory.mktemp("pki")
    files = {}
    for name, data in {
        "ca.pem": ca.cert,
        "server.pem": server.cert,
        "server.key": server.key,
    }.items():
        (root / name).write_bytes(data)
        files[name] = root / name
    return Pki(ca, server, client, files)


# -- a server in this process --------------------------------------------------------------------


async def _serve(**settings: Any) -> Runtime:
    runtime = build_runtime(
        Settings(
            database_url="memory://",
            bootstrap_key=ADMIN,
            grpc_port=0,
            lease_s=3.0,
            ui=False,
            **settings,
        )
    )
    await runtime.start()
    await runtime.workers_plane.serve_grpc()
    return runtime


@pytest.fixture
async def plain() -> AsyncIterator[Runtime]:
    runtime = await _serve()
    yield runtime
    await runtime.stop()


async def _token(runtime: Runtime) -> str:
    created = await runtime.workers_plane.tokens.create("default", "test")
    return created.plaintext


def _agent(runtime: Runtime, token: str, **config: Any) -> Agent:
    port = runtime.workers_plane.grpc_port
    registry = TaskRegistry()
    return Agent(
        AgentConfig(
            server=config.pop("server", f"127.0.0.1:{port}"),
            token=token,
            worker_id=config.pop("worker_id", "agent-1"),
            capacity=Capacity(slots=4),
            backoff_min_s=0.05,
            backoff_max_s=0.2,
            **config,
        ),
        Executor(registry, allow_shell=False),
    )


async def _run_one(runtime: Runtime, agent: Agent) -> JobState:
    task = asyncio.get_running_loop().create_task(agent.run())
    try:
        async with asyncio.timeout(30):
            while "agent-1" not in runtime.workers_plane.manager.sessions:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        [submitted] = await runtime.orchestrator.submit(
            "default", [JobRequest(kind="sleep", payload={"seconds": 0.01})]
        )
        job = await runtime.orchestrator.wait("default", submitted.job.id, 30)
        return job.state
    finally:
        agent._stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_agent_runs_a_job_over_a_plaintext_connection(plain: Runtime) -> None:
    assert await _run_one(plain, _agent(plain, await _token(plain))) is JobState.SUCCEEDED


async def test_tls_and_mutual_tls(pki: Pki) -> None:
    runtime = await _serve(
        tls_cert=pki.files["server.pem"],
        tls_key=pki.files["server.key"],
        tls_client_ca=pki.files["ca.pem"],
    )
    try:
        token = await _token(runtime)
        server = f"localhost:{runtime.workers_plane.grpc_port}"
        good = _agent(
            runtime,
            token,
            server=server,
            tls_ca=pki.ca.cert,
            tls_cert=pki.client.cert,
            tls_key=pki.client.key,
        )
        assert await _run_one(runtime, good) is JobState.SUCCEEDED
        # Without a client certificate the handshake fails: the worker never registers.
        anonymous = _agent(runtime, token, server=server, tls_ca=pki.ca.cert, worker_id="anon")
        task = asyncio.get_running_loop().create_task(anonymous.run())
        await asyncio.sleep(1.0)
        assert "anon" not in runtime.workers_plane.manager.sessions
        anonymous._stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await runtime.stop()


# -- raw protocol clients ----------------------------------------------------------------------


class RawWorker:
    """A hand-driven protocol client: what a misbehaving or old worker could send."""

    def __init__(self, runtime: Runtime, token: str) -> None:
        self.channel = grpc.aio.insecure_channel(
            f"127.0.0.1:{runtime.workers_plane.grpc_port}",
            options=[("grpc.max_send_message_length", 64 * 1024 * 1024)],
        )
        self.stub: Any = pb_grpc.WorkerServiceStub(self.channel)
        self.token = token
        self.call: Any = None

    async def connect(
        self, worker_id: str, kinds: list[str], protocol_version: int = PROTOCOL_VERSION
    ) -> pb.ServerMessage:
        cred = await self.stub.Authenticate(pb.AuthRequest(token=self.token))
        self.call = self.stub.Connect(metadata=(("authorization", f"Bearer {cred.credential}"),))
        await self.call.write(
            pb.WorkerMessage(
                register=pb.Register(
                    worker_id=worker_id,
                    kinds=kinds,
                    capacity=pb.Capacity(slots=2),
                    protocol_version=protocol_version,
                )
            )
        )
        await self.call.write(pb.WorkerMessage(heartbeat=pb.Heartbeat()))
        return await self.call.read()

    async def close(self) -> None:
        if self.call is not None:
            self.call.cancel()
        await self.channel.close()


async def test_a_late_result_of_an_old_attempt_is_rejected(plain: Runtime) -> None:
    raw = RawWorker(plain, await _token(plain))
    try:
        assert (await raw.connect("raw-1", ["noop"])).WhichOneof("body") == "registered"
        [submitted] = await plain.orchestrator.submit("default", [JobRequest(kind="noop")])
        msg = await raw.call.read()
        assignment = msg.assignment
        assert assignment.job_id == submitted.job.id and assignment.attempt == 1
        stale = pb.Result(job_id=assignment.job_id, attempt=0, tenant="default", succeeded=True)
        await raw.call.write(pb.WorkerMessage(result=stale))
        await asyncio.sleep(0.3)
        job = await plain.orchestrator.get("default", submitted.job.id)
        assert job.state is JobState.RUNNING  # the old attempt's outcome was dropped
        current = pb.Result(job_id=assignment.job_id, attempt=1, tenant="default", succeeded=True)
        await raw.call.write(pb.WorkerMessage(result=current))
        job = await plain.orchestrator.wait("default", submitted.job.id, 30)
        assert job.state is JobState.SUCCEEDED
    finally:
        await raw.close()


async def test_an_oversized_message_closes_only_that_stream(plain: Runtime) -> None:
    token = await _token(plain)
    big, small = RawWorker(plain, token), RawWorker(plain, token)
    try:
        await big.connect("big", ["noop"])
        await small.connect("small", ["noop"])
        huge = pb.LogChunk(job_id="x", attempt=1, data=b"x" * (5 * 1024 * 1024))
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await big.call.write(pb.WorkerMessage(log=huge))
            while True:
                await big.call.read()
        assert failed.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        await small.call.write(pb.WorkerMessage(heartbeat=pb.Heartbeat(cpu_percent=1)))
        await asyncio.sleep(0.2)
        assert "small" in plain.workers_plane.manager.sessions
    finally:
        await big.close()
        await small.close()


async def test_a_credential_is_required_and_a_bad_token_is_refused(plain: Runtime) -> None:
    raw = RawWorker(plain, "fw_wrong")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await raw.stub.Authenticate(pb.AuthRequest(token="fw_wrong"))
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
        call = raw.stub.Connect()
        await call.write(pb.WorkerMessage(register=pb.Register(worker_id="x")))
        with pytest.raises(grpc.aio.AioRpcError) as no_credential:
            await call.read()
        assert no_credential.value.code() is grpc.StatusCode.UNAUTHENTICATED
    finally:
        await raw.close()


async def test_a_worker_of_another_protocol_version_is_refused_for_good(plain: Runtime) -> None:
    """The server names both versions (FAILED_PRECONDITION, which the agent takes as final)."""
    raw = RawWorker(plain, await _token(plain))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await raw.connect("future", ["noop"], protocol_version=PROTOCOL_VERSION + 1)
        assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert f"protocol version {PROTOCOL_VERSION + 1}" in (refused.value.details() or "")
        assert "future" not in plain.workers_plane.manager.sessions
    finally:
        await raw.close()


async def test_garbage_bytes_close_only_that_stream(plain: Runtime) -> None:
    """A client that sends bytes no protobuf decodes loses its own stream; a worker next to
    it keeps its session and still gets work."""
    token = await _token(plain)
    good = RawWorker(plain, token)
    raw_channel = grpc.aio.insecure_channel(f"127.0.0.1:{plain.workers_plane.grpc_port}")
    try:
        assert (await good.connect("good", ["noop"])).WhichOneof("body") == "registered"
        cred = await good.stub.Authenticate(pb.AuthRequest(token=token))
        connect = raw_channel.stream_stream(
            "/faena.worker.v1.WorkerService/Connect",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        call = connect(metadata=(("authorization", f"Bearer {cred.credential}"),))
        await call.write(b"\xff\xfe not a protobuf \x00\x01\x02" * 10)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            async with asyncio.timeout(10):
                while True:
                    await call.read()
        assert failed.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
        [submitted] = await plain.orchestrator.submit("default", [JobRequest(kind="noop")])
        async with asyncio.timeout(10):
            msg = await good.call.read()
            while msg.WhichOneof("body") != "assignment":
                msg = await good.call.read()
        assert msg.assignment.job_id == submitted.job.id
        assert "good" in plain.workers_plane.manager.sessions
    finally:
        await good.close()
        await raw_channel.close()


async def test_progress_flows_from_a_remote_task_to_the_events_and_the_job(
    plain: Runtime,
) -> None:
    """``current_job().progress()`` in a task on a real agent: a ``job.progress`` event on the
    server's bus (secrets masked) and ``progress`` on the job while the attempt runs."""
    import faena

    registry = TaskRegistry()
    release = asyncio.Event()

    @faena.task(registry=registry)
    async def halfway() -> str:
        faena.current_job().progress(0.5, "page 3 of 6, key s3cr3t")
        await release.wait()
        return "done"

    agent = Agent(
        AgentConfig(
            server=f"127.0.0.1:{plain.workers_plane.grpc_port}",
            token=await _token(plain),
            worker_id="agent-1",
            capacity=Capacity(slots=2),
            secrets=["s3cr3t"],
        ),
        Executor(registry, allow_shell=False),
    )
    task = asyncio.get_running_loop().create_task(agent.run())
    try:
        async with asyncio.timeout(30):
            while "agent-1" not in plain.workers_plane.manager.sessions:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        with contextlib.closing(plain.bus.subscribe("default")) as sub:
            [submitted] = await plain.orchestrator.submit("default", [JobRequest(kind="halfway")])
            async with asyncio.timeout(30):
                event = await sub.get()
                while event.type != "job.progress":
                    event = await sub.get()
        assert event.job_id == submitted.job.id
        assert (event.data["fraction"], event.data["message"]) == (0.5, "page 3 of 6, key ****")
        job = await plain.orchestrator.get("default", submitted.job.id)
        assert plain.orchestrator.progress is not None
        shown = plain.orchestrator.progress.of(job)
        assert shown is not None and shown["fraction"] == 0.5 and shown["attempt"] == 1
        release.set()
        done = await plain.orchestrator.wait("default", submitted.job.id, 30)
        assert done.state is JobState.SUCCEEDED
        assert plain.orchestrator.progress.of(done) is None  # only while the attempt runs
    finally:
        agent._stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_worker_offering_kinds_nobody_submits_is_reported(plain: Runtime) -> None:
    """``idle_kinds`` in ``GET /v1/workers`` and a warning when the worker connects."""
    import httpx
    from structlog.testing import capture_logs

    plain.orchestrator.demand.note(["noop"])  # as a submit of a noop job a moment ago
    raw = RawWorker(plain, await _token(plain))
    try:
        with capture_logs() as logs:
            assert (await raw.connect("idler", ["noop", "sleep"])).WhichOneof("body")
        [warning] = [e for e in logs if e["event"].startswith("worker offers kinds")]
        assert (warning["worker_id"], warning["idle_kinds"]) == ("idler", ["sleep"])
        transport = httpx.ASGITransport(plain.app())
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://faena.test",
            headers={"Authorization": f"Bearer {ADMIN}"},
        ) as client:
            workers = (await client.get("/v1/workers")).json()["workers"]
        [idler] = [w for w in workers if w["id"] == "idler"]
        assert idler["idle_kinds"] == ["sleep"]
        assert all(w["idle_kinds"] == [] for w in workers if w["kind"] == "local")
        sleep = JobRequest(kind="sleep", payload={"seconds": 0}, delay_s=600)
        await plain.orchestrator.submit("default", [sleep])
        assert plain.orchestrator.demand.idle(["noop", "sleep"]) == []
    finally:
        await raw.close()


class CuttableProxy:
    """A TCP proxy between an agent and the server that can swallow what the agent sends
    (bytes in flight that never arrive) and then cut every connection."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.swallow = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    if up and self.swallow:
                        continue  # written by the agent, never delivered
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))

    def cut(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def test_log_chunks_lost_with_a_cut_stream_are_sent_again_once(plain: Runtime) -> None:
    """Chunks written into a connection that dies never reach the server; the agent keeps what
    the server has not acknowledged and sends it again after reconnecting; the server keeps
    each chunk once."""
    import faena
    from faena.ports.store import ReadLogsParams

    registry = TaskRegistry()
    phase: dict[str, asyncio.Event] = {n: asyncio.Event() for n in ("one", "go2", "two", "go3")}

    @faena.task(registry=registry)
    async def chatty() -> str:
        job = faena.current_job()
        for i in range(2):
            job.log(f"line {i}")
        phase["one"].set()
        await phase["go2"].wait()
        for i in range(2, 5):
            job.log(f"line {i}")
        phase["two"].set()
        await phase["go3"].wait()
        for i in range(5, 7):
            job.log(f"line {i}")
        return "ok"

    proxy = CuttableProxy(plain.workers_plane.grpc_port)
    await proxy.start()
    agent = Agent(
        AgentConfig(
            server=f"127.0.0.1:{proxy.port}",
            token=await _token(plain),
            worker_id="agent-1",
            capacity=Capacity(slots=2),
            backoff_min_s=0.05,
            backoff_max_s=0.2,
        ),
        Executor(registry, allow_shell=False),
    )
    manager = plain.workers_plane.manager
    task = asyncio.get_running_loop().create_task(agent.run())

    async def stored() -> str:
        chunks = await plain.store.read_logs(ReadLogsParams("default", job_id))
        return "".join(c.chunk.data for c in chunks)

    try:
        async with asyncio.timeout(30):
            while "agent-1" not in manager.sessions:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            [submitted] = await plain.orchestrator.submit("default", [JobRequest(kind="chatty")])
            job_id = submitted.job.id
            await phase["one"].wait()
            while await stored() != "line 0\nline 1\n":  # noqa: ASYNC110 - a store read
                await asyncio.sleep(0.02)
            first = manager.sessions["agent-1"]
            proxy.swallow = True
            phase["go2"].set()
            await phase["two"].wait()
            await asyncio.sleep(0.3)  # lines 2-4 are written into the connection, and lost
            assert await stored() == "line 0\nline 1\n"
            proxy.swallow = False
            proxy.cut()
            while manager.sessions.get("agent-1") in (None, first):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            phase["go3"].set()
            done = await plain.orchestrator.wait("default", job_id, 20)
        assert done.state is JobState.SUCCEEDED
        assert await stored() == "".join(f"line {i}\n" for i in range(7))
        async with asyncio.timeout(10):  # every chunk is acknowledged in the end
            while agent._unacked:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    finally:
        agent._stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await proxy.close()
