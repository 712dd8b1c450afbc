"""Settings: the only place that reads faena's environment variables (for servers; clients
resolve theirs in ``faena.client_config``). CLI flags arrive as overrides and win."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from faena.domain.errors import ValidationError

DEFAULT_DATABASE_URL = "sqlite:///./.faena/faena.db"


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting with its default; the environment variable is ``FAENA_<NAME upper>``."""

    database_url: str = DEFAULT_DATABASE_URL
    home: Path = Path(".faena")
    host: str = "127.0.0.1"
    port: int = 8000
    grpc_port: int = 50051
    workers: int = 0  # slots of the local worker pool (``faena up`` defaults to 100)
    imports: tuple[str, ...] = ()
    allow_shell: bool = True
    bootstrap_key: str | None = None
    lease_s: float = 30.0
    shutdown_grace_s: float = 30.0
    max_body_bytes: int = 10 * 1024 * 1024
    sqlite_synchronous: str = "NORMAL"
    db_pool_min: int = 2
    db_pool_max: int = 10
    db_breaker_failures: int = 5  # store errors in a row that open the circuit breaker; 0: off
    db_breaker_reset_s: float = 2.0  # how long an open breaker fails fast before probing
    claim_batch: int = 500
    claim_poll_s: float = 1.0  # the pool's fallback claim when nothing woke it (NOTIFY, submits)
    log_format: str = "auto"  # auto | json | console
    log_level: str = "info"
    cpu_workers: int | None = None
    retention_days: float = 30.0  # finished jobs older than this are deleted; 0: kept forever
    workflow_sweep_s: float = 2.0  # how often running workflow runs are re-checked
    schedule_poll_s: float = 1.0  # how often due cron ticks are looked for
    delivery_poll_s: float = 0.5  # how often the outbox and webhook deliveries are relayed
    # -- remote workers (issue 4) --
    tls_cert: Path | None = None  # TLS for the worker protocol (with tls_key)
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # mutual TLS: workers must show a certificate it signed
    placement: str = "weighted"  # scorer of remote placement: weighted | spread | bin-packing
    placement_queues: str = ""  # per queue: "reports=bin-packing,web=spread"
    grpc_max_message_bytes: int = 4 * 1024 * 1024
    # -- observability (issue 7) --
    metrics: bool = True  # serve Prometheus metrics at /metrics (no auth)
    tracing: str = "auto"  # auto (on when OTEL_EXPORTER_OTLP_ENDPOINT is set) | on | off
    trace_store_sample: float = 0.1  # share of store calls traced under a traced request/job
    ui: bool = True  # serve the dashboard at /ui
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        defaults: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> Settings:
        """``defaults`` (a command's own) < the environment < ``overrides`` (its flags)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = dict(defaults or {})
        for f in fields(cls):
            if f.name == "extra":
                continue
            raw = env.get(f"FAENA_{f.name.upper()}")
            if f.name == "imports" and raw is None:
                raw = env.get("FAENA_IMPORT")
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        if not 0 <= self.port < 65536 or not 0 <= self.grpc_port < 65536:
            raise ValidationError("ports must be between 0 (any free port) and 65535")
        if not 0 <= self.workers <= 100_000:
            raise ValidationError("workers must be between 0 and 100000")
        if not 1 <= self.lease_s <= 3600:
            raise ValidationError("lease_s must be between 1 and 3600 seconds")
        if self.sqlite_synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValidationError("sqlite_synchronous must be OFF, NORMAL, FULL or EXTRA")
        if self.log_format not in {"auto", "json", "console"}:
            raise ValidationError("log_format must be auto, json or console")
        if not 0.01 <= self.claim_poll_s <= 3600:
            raise ValidationError("claim_poll_s must be between 0.01 and 3600 seconds")
        if self.db_breaker_failures < 0 or not 0 < self.db_breaker_reset_s <= 600:
            raise ValidationError(
                "db_breaker_failures must be >= 0 (0: no breaker) and db_breaker_reset_s "
                "between 0 and 600 seconds"
            )
        if self.tracing not in {"auto", "on", "off"}:
            raise ValidationError("tracing must be auto, on or off")
        if not 0 <= self.trace_store_sample <= 1:
            raise ValidationError("trace_store_sample must be between 0 and 1")
        if not 0 <= self.retention_days <= 36_500:
            raise ValidationError("retention_days must be between 0 (keep forever) and 36500")

    def queue_scorers(self) -> dict[str, str]:
        """``placement_queues`` as a mapping of queue to scorer name."""
        out: dict[str, str] = {}
        for part in self.placement_queues.split(","):
            if part.strip():
                queue, sep, scorer = part.partition("=")
                if not sep or not queue.strip() or not scorer.strip():
                    raise ValidationError("placement_queues must read QUEUE=SCORER,...")
                out[queue.strip()] = scorer.strip()
        return out

    def evolve(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _parse(name: str, kind: Any, raw: str) -> Any:
    kind = str(kind)
    try:
        if "bool" in kind:
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValidationError(f"FAENA_{name.upper()}={raw!r} is not true or false")
        if "tuple" in kind:
            return tuple(p.strip() for p in raw.split(",") if p.strip())
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
        if "Path" in kind:
            return Path(raw)
        if "int | None" in kind:
            return int(raw)
    except ValueError:
        raise ValidationError(f"FAENA_{name.upper()}={raw!r} is not a valid {kind}") from None
    return raw
