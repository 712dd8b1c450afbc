"""The composition root: settings → adapters → services → the running process.

Nothing else in faena builds adapters or wires services together.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog

from faena.adapters.local_bus import LocalBus
from faena.config import Settings
from faena.domain.errors import FaenaError, Unavailable, ValidationError
from faena.ports.backup import BackupReport, StoreBackup
from faena.ports.bus import ChangeFeed
from faena.ports.clock import SystemClock
from faena.ports.executor import KindHandler
from faena.ports.store import JobStore, NotifyingStore
from faena.services.breaker import CircuitBreaker, guarded
from faena.services.catalog import KindCatalog
from faena.services.completions import Completer
from faena.services.dispatch import LocalPool, PoolConfig
from faena.services.keys import CreatedKey, KeyService
from faena.services.leases import LeaseReaper
from faena.services.logs import LogWriter
from faena.services.orchestrator import Orchestrator
from faena.services.retention import DAY_S, Retention

log = structlog.get_logger("faena")


def open_store(settings: Settings) -> JobStore:
    """The Store adapter for ``database_url`` (not yet opened)."""
    url = settings.database_url
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from faena.adapters.sqlite.store import SqliteStore

        return SqliteStore(sqlite_path(url), synchronous=settings.sqlite_synchronous)
    if scheme in {"postgresql", "postgres"}:
        from faena.adapters.postgres.store import PostgresStore

        return PostgresStore(url, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
    if scheme == "memory":
        from faena.adapters.memory.store import MemoryStore

        return MemoryStore()
    raise ValidationError(
        f"unsupported database URL {url!r}: use sqlite:///PATH, postgresql://... or memory://"
    )


def open_backup(settings: Settings) -> StoreBackup:
    """The backup adapter for ``database_url``: SQLite's online backup, or pg_dump/pg_restore."""
    url = settings.database_url
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from faena.adapters.sqlite.backup import SqliteBackup

        return SqliteBackup(sqlite_path(url))
    if scheme in {"postgresql", "postgres"}:
        from faena.adapters.postgres.backup import PostgresBackup

        return PostgresBackup(url)
    if scheme == "memory":
        raise ValidationError("a memory:// store keeps nothing to back up or restore")
    raise ValidationError(
        f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://..."
    )


async def backup_store(settings: Settings, path: Path, *, overwrite: bool = False) -> BackupReport:
    """Write a verified backup of the configured store to ``path`` (faena may keep running)."""
    return await open_backup(settings).backup(path, overwrite=overwrite)


async def restore_store(settings: Settings, path: Path, *, force: bool = False) -> BackupReport:
    """Replace the configured store's contents with the backup at ``path`` (faena stopped)."""
    return await open_backup(settings).restore(path, force=force)


def sqlite_path(url: str) -> Path:
    """``sqlite:///./x.db`` and ``sqlite:///x.db`` are relative; ``sqlite:////abs/x.db`` is not."""
    rest = url[len("sqlite://") :]
    if not rest.startswith("/") or rest == "/":
        raise ValidationError(f"bad SQLite URL {url!r}: expected sqlite:///PATH")
    rest = rest[1:]
    if rest.startswith("/"):
        return Path(rest)
    return Path(rest or "faena.db")


def import_task_modules(modules: tuple[str, ...]) -> None:
    """Import the user's modules so their ``@faena.task`` functions register."""
    if modules and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as e:
            raise ValidationError(f"cannot import {name!r}: {type(e).__name__}: {e}") from None


def configure_logging(settings: Settings, *, cache: bool = True) -> None:
    """Structured log lines on stderr. ``cache``: bind each logger once, on first use (the
    servers' hot path); the short commands pass False, so that running one inside another
    process (a test) leaves that process's loggers free to be configured again."""
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    as_json = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=cache,
    )


@dataclass
class Runtime:
    """Everything one faena process runs, built from settings; ``start``/``stop`` in order."""

    settings: Settings
    store: JobStore
    bus: LocalBus
    orchestrator: Orchestrator
    keys: KeyService
    logs: LogWriter
    completer: Completer
    reaper: LeaseReaper
    executor: Any | None = None
    pool: LocalPool | None = None
    bootstrap_key: CreatedKey | None = None
    port: int = 0
    _reaper_task: asyncio.Task[None] | None = None
    workers_plane: Any | None = None  # faena.bootstrap_workers.WorkerPlane (issue 4)
    retention: Retention | None = None  # purges old finished jobs (FAENA_RETENTION_DAYS)
    _retention_task: asyncio.Task[None] | None = None
    feed: ChangeFeed | None = None  # other servers' changes (a store that supports notify)
    workflows: Any | None = None  # faena.services.workflows.WorkflowService (issue 5)
    telemetry: Any | None = None  # faena.observability.Telemetry: metrics and tracing (issue 7)
    readiness: Any | None = None  # faena.observability.readiness.Readiness (issue 7)
    automation: Any | None = None  # faena.services.automation.Automation: engine, cron, hooks
    artefacts: Any | None = None  # faena.services.artefacts.ArtefactService (issue 9)
    mail: Any | None = None  # faena.services.mail.MailService: mailbox watches (issue 9)
    rate_limits: Any | None = None  # faena.services.ratelimit.RateLimits (issue 6); None: off
    tenants: Any | None = None  # faena.services.tenants.TenantService (issue 6)
    audit: Any | None = None  # faena.services.audit.AuditLog (issue 6)
    secrets: Any | None = None  # faena.services.secrets.SecretService (issue 6)
    secret_key_home: Path | None = None  # embedded, no key yet: create it there on start
    llm: Any | None = None  # faena.services.llm.LlmService (issue 8)
    semantic_cache: Any | None = None  # faena.services.semantic_cache.SemanticCache (issue 8)
    ask: Any | None = None  # faena.services.ask.AskService: /v1/ask (issue 8)

    async def start(self) -> None:
        await self.store.open()
        if self.secret_key_home is not None and self.secrets is not None:
            self.secrets.use_cipher(embedded_key_ring(self.secret_key_home, self.settings))
        self.bootstrap_key = await self.keys.bootstrap(self.settings.bootstrap_key)
        if self.bootstrap_key is not None and self.settings.bootstrap_key is None:
            write_key_file(self.settings.home, self.bootstrap_key.plaintext)
        if self.pool is not None:
            self.pool.start()
        if self.feed is not None:
            self.feed.start(self.bus.publish, self.orchestrator.wake_claimers)
        self._reaper_task = asyncio.get_running_loop().create_task(
            self.reaper.run(), name="lease-reaper"
        )
        if self.retention is not None:
            self._retention_task = asyncio.get_running_loop().create_task(
                self.retention.run(), name="retention"
            )
        if self.automation is not None:
            self.automation.start()
        if self.workers_plane is not None:
            await self.workers_plane.start()

    async def stop(self) -> None:
        if self.workers_plane is not None:
            await self.workers_plane.stop()
        if self.automation is not None:
            await self.automation.stop()
        if self.pool is not None:
            await self.pool.stop(self.settings.shutdown_grace_s)
        if self._reaper_task is not None:
            self._reaper_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper_task
        if self._retention_task is not None:
            self._retention_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention_task
        if self.feed is not None:
            await self.feed.stop()
        await self.logs.close()
        await self.completer.close()
        if self.audit is not None:
            await self.audit.close()  # entries being written are committed first
        if self.executor is not None:
            await self.executor.aclose()
        if self.artefacts is not None:
            await self.artefacts.blobs.aclose()
        await self.store.close()
        if self.telemetry is not None and self.telemetry.tracing is not None:
            self.telemetry.tracing.shutdown()  # flushes the spans still batched
        if self.rate_limits is not None:
            await self.rate_limits.limiter.close()

    async def ready(self) -> dict[str, Any]:
        if self.readiness is not None:  # store, migrations and background loops (issue 7)
            found: dict[str, Any] = await self.readiness.check()
            return found
        await self.store.ping()
        version = await self.store.schema_version()
        return {"store": "ok", "schema_version": version}

    def app(self) -> Any:
        from faena.api.app import create_app
        from faena.api.body import InputLimits

        if self.rate_limits is None:  # one set of buckets per process, whatever the apps
            self.rate_limits = build_rate_limits(self.settings, self.telemetry)

        return create_app(
            self.orchestrator,
            self.keys,
            ready=self.ready,
            max_body_bytes=self.settings.max_body_bytes,
            automation=self.automation,
            workers=self.workers_plane,
            telemetry=self.telemetry,
            ui=self.settings.ui,
            artefacts=self.artefacts,
            mail=self.mail,
            rate_limits=self.rate_limits,
            input_limits=InputLimits(self.settings.max_json_depth, self.settings.max_string_length),
            tenants=self.tenants,
            audit=self.audit,
            secrets=self.secrets,
            llm=self.llm,
            ask=self.ask,
        )


def write_key_file(home: Path, plaintext: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "admin.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(plaintext + "\n")
    os.chmod(path, 0o600)
    return path


def build_runtime(  # noqa: PLR0915 - the composition root: one line per service it wires
    settings: Settings, *, registry: Any | None = None, telemetry: Any | None = None
) -> Runtime:
    """Wire adapters and services. Imports task modules when a local pool runs; ``registry``
    replaces the global ``@faena.task`` registry (tests)."""
    clock = SystemClock()
    store = open_store(settings)
    feed = store.change_feed() if isinstance(store, NotifyingStore) else None
    from faena.observability.wiring import build_telemetry

    if telemetry is None:  # tests hand in their own (an in-memory span exporter)
        telemetry = build_telemetry(settings, dict(os.environ))
    store = telemetry.wrap_store(store)
    if settings.db_breaker_failures > 0:
        store = guarded(
            store,
            CircuitBreaker(
                failures=settings.db_breaker_failures, reset_s=settings.db_breaker_reset_s
            ),
        )
    bus = LocalBus()
    # The kinds feature areas plug into this process's executor (llm, email.send, ocr …), by
    # name; filled in by build_kind_handlers once the services they use exist.
    handlers: dict[str, KindHandler] = {}
    # Strict on every store: the kinds served are this process's and those of every live worker
    # in the shared registry (see build_worker_plane), so a kind nobody serves is refused.
    catalog = KindCatalog(validate_payload=_payload_validator(handlers))
    orchestrator = Orchestrator(store, bus, clock, catalog)
    keys = KeyService(store, clock, tenants=store)  # type: ignore[arg-type]  # a TenantStore
    logs = LogWriter(store, bus, clock)
    orchestrator.progress = logs.progress  # progress on GET /v1/jobs/{id}
    completer = Completer(store, bus, clock)
    reaper = LeaseReaper(store, bus, clock, interval_s=min(1.0, settings.lease_s / 4))
    runtime = Runtime(settings, store, bus, orchestrator, keys, logs, completer, reaper)
    runtime.telemetry = telemetry
    orchestrator.set_observer(telemetry)
    completer.set_observer(telemetry)
    reaper.set_observer(telemetry)
    build_access(settings, runtime, clock)  # tenants, audit log, retention
    runtime.secrets, runtime.secret_key_home = build_secrets(settings, store, clock, runtime.audit)
    runtime.feed = feed if store.supports_notify else None
    from faena.services.automation import build_automation

    runtime.automation = build_automation(
        store,  # type: ignore[arg-type]  # every adapter is also a WorkflowStore
        orchestrator,
        bus,
        clock,
        sweep_s=settings.workflow_sweep_s,
        schedule_poll_s=settings.schedule_poll_s,
        delivery_poll_s=settings.delivery_poll_s,
    )
    runtime.workflows = runtime.automation.workflows
    from faena.bootstrap_documents import build_artefacts

    runtime.artefacts = build_artefacts(settings, runtime)  # before the kinds that use it
    handlers.update(build_kind_handlers(settings, runtime))
    runtime.mail = build_mail(settings, runtime)  # mailbox watches (issue 9)
    if settings.workers > 0:
        import_task_modules(settings.imports)
        from faena.worker.executor import Executor
        from faena.worker.registry import default_registry

        executor = Executor(
            registry or default_registry,
            allow_shell=settings.allow_shell,
            cpu_workers=settings.cpu_workers,
            handlers=handlers,
        )
        catalog.add_source(executor.kinds, executor.defaults)
        pool = LocalPool(
            store,
            bus=bus,
            clock=clock,
            executor=executor,
            logs=logs,
            completer=completer,
            config=PoolConfig(
                worker_id=f"{socket.gethostname()}:{os.getpid()}:local",
                concurrency=settings.workers,
                lease_s=settings.lease_s,
                claim_batch=settings.claim_batch,
                poll_s=settings.claim_poll_s,
            ),
        )
        orchestrator.on_runnable(pool.wake)
        if settings.start_on_submit:
            orchestrator.set_starter(pool)
        completer.set_on_runnable(pool.wake)
        reaper.set_on_runnable(pool.wake)
        runtime.executor = executor
        runtime.pool = pool
    from faena.bootstrap_workers import build_worker_plane, record_local_pool

    runtime.workers_plane = build_worker_plane(
        settings,
        store=store,
        bus=bus,
        clock=clock,
        logs=logs,
        completer=completer,
        catalog=catalog,
        orchestrator=orchestrator,
    )
    if runtime.pool is not None:
        record_local_pool(runtime.workers_plane, runtime.pool, runtime.executor, clock)
    resolve_secrets_at_hand_off(runtime)
    from faena.observability.wiring import observe_runtime

    observe_runtime(runtime)
    return runtime


def build_rate_limits(settings: Settings, telemetry: Any | None = None) -> Any | None:
    """The API's rate limits (issue 6): buckets in Redis when ``redis_url`` is set (shared by
    every server), else in this process; None when ``FAENA_RATE_LIMITS=off``."""
    if not settings.rate_limits:
        return None
    from faena.ports.ratelimit import RateLimiter
    from faena.services.ratelimit import RateLimits, RateLimitSettings

    limiter: RateLimiter
    if settings.redis_url:
        from faena.adapters.redis.ratelimit import RedisRateLimiter

        limiter = RedisRateLimiter(settings.redis_url)
    else:
        from faena.adapters.memory.ratelimit import MemoryRateLimiter

        limiter = MemoryRateLimiter()
    try:
        limits = RateLimits(
            limiter,
            RateLimitSettings(
                per_minute=settings.rate_limit,
                bulk_per_minute=settings.rate_limit_bulk,
                health_per_minute=settings.rate_limit_health,
                auth_failures_per_minute=settings.rate_limit_auth_failures,
                trusted_proxies=settings.trusted_proxies,
            ),
        )
    except ValueError as e:
        raise ValidationError(f"FAENA_TRUSTED_PROXIES: {e}") from None
    if telemetry is not None:
        from faena.observability.wiring import observe_rate_limits

        observe_rate_limits(telemetry, limits)
    return limits


def build_secrets(
    settings: Settings, store: Any, clock: SystemClock, audit: Any
) -> tuple[Any, Path | None]:
    """The secret service and, for an embedded store without a key yet, the home its key file
    is created in on start. ``FAENA_SECRET_KEY`` wins; an embedded store (SQLite, memory) else
    uses ``$FAENA_HOME/secret.key``; a PostgreSQL server without the variable runs without
    secrets (storing one is refused with a clear error) rather than invent a key only it knows."""
    from faena.services.secrets import SecretService

    cipher = secret_key_ring(settings)
    pending_home: Path | None = None
    scheme = urlsplit(settings.database_url).scheme
    if cipher is None and scheme == "memory":  # nothing outlives the process: neither may its key
        from faena.adapters.secret_keys import AesGcmKeyRing

        cipher = AesGcmKeyRing(os.urandom(32))
    elif cipher is None and scheme == "sqlite":
        from faena.adapters.secret_keys import read_key_files

        if read_key_files(settings.home)[0] is not None:
            cipher = embedded_key_ring(settings.home, settings)
        else:
            pending_home = settings.home
    return SecretService(store, cipher, clock, audit=audit), pending_home


def secret_key_ring(settings: Settings) -> Any | None:
    """The key ring of ``FAENA_SECRET_KEY`` (+ ``FAENA_SECRET_KEY_PREVIOUS``), or None."""
    if not settings.secret_key:
        return None
    from faena.adapters.secret_keys import AesGcmKeyRing

    previous = (settings.secret_key_previous or "").split(",")
    return AesGcmKeyRing.from_text(settings.secret_key, previous)


def embedded_key_ring(home: Path, settings: Settings) -> Any:
    """The key ring of ``$FAENA_HOME/secret.key`` (created, mode 0600, when absent) and its
    previous keys (``secret.key.previous`` and ``FAENA_SECRET_KEY_PREVIOUS``)."""
    from faena.adapters.secret_keys import AesGcmKeyRing, create_key_file, read_key_files

    current, previous = read_key_files(home)
    if current is None:
        current = create_key_file(home)
    extra = (settings.secret_key_previous or "").split(",")
    return AesGcmKeyRing.from_text(current, [*previous, *extra])


def build_access(settings: Settings, runtime: Runtime, clock: SystemClock) -> None:
    """Tenants, the audit log and retention (issue 6): every store adapter is also a
    TenantStore and an AuditStore."""
    from faena.services.audit import AuditLog
    from faena.services.tenants import TenantService

    store: Any = runtime.store
    runtime.tenants = TenantService(store, clock)
    runtime.audit = AuditLog(store, clock, durable=settings.audit_durable, bus=runtime.bus)
    if settings.retention_days > 0 or settings.audit_retention_days > 0:
        runtime.retention = Retention(
            store,
            clock,
            keep_s=settings.retention_days * DAY_S or float("inf"),  # 0: jobs kept forever
            audit=runtime.audit,
            audit_keep_s=settings.audit_retention_days * DAY_S,
        )


def resolve_secrets_at_hand_off(runtime: Runtime) -> None:
    """The local pool and the remote placement resolve ``{{ secrets.NAME }}`` in the copy of
    a job they hand to its worker, and mask the values in what comes back."""
    if runtime.secrets is None:
        return
    if runtime.pool is not None:
        runtime.pool.set_secrets(runtime.secrets)
    if runtime.workers_plane is not None:
        runtime.workers_plane.manager.set_secrets(runtime.secrets)


def new_secret_key() -> str:
    """A new master key for ``FAENA_SECRET_KEY`` (``faena secrets gen-key``)."""
    from faena.adapters.secret_keys import generate_key

    return generate_key()


async def rotate_secret_key(
    settings: Settings, *, new_key: str | None = None, batch: int = 100
) -> Any:
    """Re-encrypt every secret under the current key (``faena secrets rotate-key``).

    With ``FAENA_SECRET_KEY``: the new key is that variable, the old one(s) in
    ``FAENA_SECRET_KEY_PREVIOUS``. Embedded, with ``new_key``: the key files are switched first
    (the old key kept in ``secret.key.previous``), so an interrupted run can simply be resumed.
    """
    from faena.adapters.secret_keys import read_key_files, rotate_key_files
    from faena.domain.secrets import SecretsUnavailable
    from faena.services.audit import AuditLog
    from faena.services.secrets import NO_KEY, SecretService

    embedded = urlsplit(settings.database_url).scheme == "sqlite" and not settings.secret_key
    if new_key is not None:
        if not embedded:
            raise ValidationError(
                "a new key is given through FAENA_SECRET_KEY (the old one in "
                "FAENA_SECRET_KEY_PREVIOUS) when FAENA_SECRET_KEY is used or the store is not "
                "SQLite; then run 'faena secrets rotate-key' without --generate/--new-key-file"
            )
        rotate_key_files(settings.home, new_key)
    ring = secret_key_ring(settings)
    if ring is None and embedded and read_key_files(settings.home)[0] is not None:
        ring = embedded_key_ring(settings.home, settings)
    if ring is None:
        raise SecretsUnavailable(NO_KEY)
    clock = SystemClock()
    store = open_store(settings)
    await store.open()
    try:
        audit = AuditLog(store, clock)  # type: ignore[arg-type]  # every store is an AuditStore
        service = SecretService(store, ring, clock, audit=audit)  # type: ignore[arg-type]
        return await service.rotate(batch=batch)
    finally:
        await store.close()


def _payload_validator(handlers: dict[str, KindHandler]) -> Callable[[str, Any], None]:
    """Check a payload at submit: a plugged-in kind's own check, else the built-ins'."""
    from faena.worker.kinds import validate_payload

    def validate(kind: str, payload: Any) -> None:
        handler = handlers.get(kind)
        if handler is not None:
            handler.validate(payload)
        else:
            validate_payload(kind, payload)

    return validate


def build_mail(settings: Settings, runtime: Runtime) -> Any:
    """The mailbox watches' service and watcher (issue 9): :mod:`faena.bootstrap_mail`."""
    from faena.bootstrap_mail import build_mail as build

    return build(settings, runtime)


def build_kind_handlers(settings: Settings, runtime: Runtime) -> dict[str, KindHandler]:
    """The kinds feature areas add to this process's local pool, built on its services.

    Each area adds its own block here (and nowhere else builds them); a remote ``faena worker``
    registers the self-contained ones in ``faena.cli.worker``.
    """
    handlers: dict[str, KindHandler] = {}
    # -- documents (issue 9): document.text, ocr --
    from faena.bootstrap_documents import document_kinds

    handlers.update(document_kinds(settings, runtime))
    # -- mail and notifications (issue 9): email.send, notify.webhook/slack/email --
    from faena.bootstrap_mail import mail_kinds

    handlers.update(mail_kinds(settings, runtime))
    # -- the LLM layer (issue 8): llm (local pool only: it needs the store and secrets) --
    from faena.bootstrap_llm import llm_kinds

    handlers.update(llm_kinds(settings, runtime))
    # -- embeddings, semantic cache, /v1/ask, agent (issue 8, after the LLM layer) --
    from faena.bootstrap_ai import ai_kinds

    handlers.update(ai_kinds(settings, runtime))
    return handlers


class _Server:
    """uvicorn without its own signal handling: faena drains its pool before exiting."""

    def __init__(self, app: Any, settings: Settings) -> None:
        import uvicorn

        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            loop="none",
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
            server_header=False,
            # The client address is the socket peer; forwarded headers are faena's to judge
            # (trusted proxies), not uvicorn's, which trusts 127.0.0.1 by default.
            proxy_headers=False,
        )

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Any:
                yield

        self.server = Server(config)

    async def serve(self, sock: socket.socket) -> None:
        await self.server.serve(sockets=[sock])

    def exit(self) -> None:
        if self.server.should_exit:
            self.server.force_exit = True
        self.server.should_exit = True

    @property
    def started(self) -> bool:
        return bool(self.server.started)


def tune_gc(threshold: int) -> None:
    """Keep the cyclic garbage collector off the request path of a long-running process.

    With Python's defaults (700 allocations) a busy server collects its young generation
    thousands of times a second and, every so often, the whole heap: FastAPI, pydantic, gRPC
    and SQLAlchemy-sized module graphs take ~100 ms to walk, a stall every client in flight
    waits for (the p99 of ``bench.api_load``). What is alive once the process has started
    is moved out of the collector's sight (``gc.freeze``) and young collections wait for
    ``threshold`` allocations; reference counting still frees almost everything at once."""
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(threshold, 20, 100)


async def serve(settings: Settings, announce: Callable[[Runtime], None]) -> None:
    """Run a faena process until SIGINT/SIGTERM, then drain and stop in order."""
    runtime = build_runtime(settings)
    try:
        await runtime.start()
    except FaenaError:
        await _quietly(runtime.store.close())
        raise
    tune_gc(settings.gc_threshold)
    try:
        sock = bind_socket(settings.host, settings.port)
        if runtime.workers_plane is not None:  # the worker protocol, beside the HTTP API
            await runtime.workers_plane.serve_grpc()
    except FaenaError:
        await runtime.stop()
        raise
    runtime.port = sock.getsockname()[1]
    server = _Server(runtime.app(), settings)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def on_signal() -> None:
        stopping.set()
        server.exit()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    serving = loop.create_task(server.serve(sock), name="http")
    try:
        while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn has no event
            await asyncio.sleep(0.005)
        if not serving.done():
            announce(runtime)
        await serving
    finally:
        log.info("shutting down")
        await runtime.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind here rather than in uvicorn, so a busy port is a clear error and not an exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise Unavailable(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock


async def _quietly(awaitable: Any) -> None:
    with contextlib.suppress(Exception):
        await awaitable


def install_uvloop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
