"""Settings: the only place that reads faena's environment variables (for servers; clients
resolve theirs in ``faena.client_config``). CLI flags arrive as overrides and win."""

from __future__ import annotations

import ipaddress
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
    gc_threshold: int = 100_000  # allocations between young collections; 0: Python's own
    max_body_bytes: int = 10 * 1024 * 1024
    sqlite_synchronous: str = "NORMAL"
    db_pool_min: int = 2
    db_pool_max: int = 10
    db_breaker_failures: int = 5  # store errors in a row that open the circuit breaker; 0: off
    db_breaker_reset_s: float = 2.0  # how long an open breaker fails fast before probing
    claim_batch: int = 500
    claim_poll_s: float = 1.0  # the pool's fallback claim when nothing woke it (NOTIFY, submits)
    start_on_submit: bool = True  # an idle local pool takes submitted jobs in the submit's commit
    log_format: str = "auto"  # auto | json | console
    log_level: str = "info"
    cpu_workers: int | None = None
    retention_days: float = 30.0  # finished jobs older than this are deleted; 0: kept forever
    audit_retention_days: float = 90.0  # audit entries older than this are deleted; 0: kept
    audit_durable: bool = True  # API answers wait for their audit entry's commit
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
    # -- secrets (issue 6, docs/secrets.md); never printed (repr=False) --
    secret_key: str | None = field(default=None, repr=False)  # 32 bytes base64url
    secret_key_previous: str | None = field(default=None, repr=False)  # old keys, comma-separated
    # -- rate limits and input protection (issue 6, docs/security.md) --
    rate_limits: bool = True  # FAENA_RATE_LIMITS=off disables every limit below
    rate_limit: int = 100  # requests per minute per API key and per client address
    rate_limit_bulk: int = 10  # bulk requests (POST /v1/jobs/batch) per minute per key
    rate_limit_health: int = 1000  # /healthz, /readyz, /metrics per minute per address
    rate_limit_auth_failures: int = 20  # refused keys per minute per address, then 429
    trusted_proxies: tuple[str, ...] = ()  # addresses/networks whose X-Forwarded-For counts
    redis_url: str | None = None  # rate-limit buckets shared by every server using it
    max_json_depth: int = 32  # nesting of JSON (and YAML) bodies
    max_string_length: int = 1024 * 1024  # characters of any one string in a body
    # -- artefacts and documents (issue 9) --
    blob_url: str = ""  # where artefact bytes live: "" = $FAENA_HOME/artefacts, or s3://BUCKET/…
    artefact_max_bytes: int = 100 * 1024 * 1024  # larger uploads are refused (413)
    artefact_retention_days: float = 0.0  # artefacts older than this are deleted; 0: kept
    document_workers: int = 2  # processes reading PDFs and running Tesseract
    document_cache_days: float = 30.0  # cached document results are kept this long
    document_memo_s: float = 30.0  # repeated cache hits answered in process; 0: always the store
    # -- mail and notifications (issue 9, docs/mail.md) --
    mail_watch: bool = True  # run mailbox watches (IMAP) on this server
    mail_scan_s: float = 2.0  # how often watches are leased and new ones picked up
    smtp_url: str | None = None  # default SMTP server: smtp://user@host:587?starttls=true
    smtp_password: str | None = None  # its password
    smtp_from: str | None = None  # default From of email.send and notify.email
    notify_group_s: float = 0.5  # Slack/email notifications to one channel within this are one
    notify_breaker_failures: int = 5  # failed deliveries in a row that open an endpoint's breaker
    notify_breaker_reset_s: float = 30.0  # how long an open breaker skips the endpoint
    # -- the LLM layer (issue 8, docs/ai.md) --
    llm_injection_action: str = "block"  # prompt-injection guardrail: block | flag | off
    llm_injection_threshold: float = 0.5  # heuristic score at or above which it acts
    llm_injection_classifier: str = ""  # "module:callable" replacing the heuristics; "": them
    llm_pii_action: str = "redact"  # PII before a provider: redact | block | off
    llm_pii_national_ids: str = ""  # extra ids: "name=REGEX;name2=REGEX" (defaults kept)
    llm_max_reasks: int = 1  # re-asks on one tier when an answer fails its response_schema
    llm_max_output_chars: int = 32_000  # longer answers are rejected (then escalated)
    llm_breaker_failures: int = 3  # failed calls in a row that open a provider's breaker
    llm_breaker_reset_s: float = 30.0  # how long an open provider breaker is skipped
    llm_max_retry_after_s: float = 20.0  # a longer Retry-After falls back instead of waiting
    # -- embeddings, semantic cache, ask, agents (issue 8, docs/ai.md) --
    embedding_model: str = ""  # all-MiniLM-L6-v2 directory; "": the packaged model
    cache_threshold: float = 0.95  # cosine similarity of a semantic cache hit (opt-in steps)
    cache_ttl_s: float = 86_400.0  # default lifetime of a cache entry
    cache_refresh_s: float = 1.0  # how stale another server's cache entries may be here
    ask_threshold: float = 0.35  # least similarity of a workflow that /v1/ask may pick
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

    def _check_gc(self) -> None:
        if not 0 <= self.gc_threshold <= 10_000_000:
            raise ValidationError("gc_threshold must be between 0 (Python's default) and 10000000")

    def check(self) -> None:
        if not 0 <= self.port < 65536 or not 0 <= self.grpc_port < 65536:
            raise ValidationError("ports must be between 0 (any free port) and 65535")
        if not 0 <= self.workers <= 100_000:
            raise ValidationError("workers must be between 0 and 100000")
        self._check_gc()
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
        self._check_mail()
        self._check_llm()
        if not (0 <= self.retention_days <= 36_500 and 0 <= self.audit_retention_days <= 36_500):
            raise ValidationError(
                "retention_days and audit_retention_days must be between 0 (keep forever) "
                "and 36500"
            )
        self._check_input_limits()
        if not (0 < self.cache_threshold <= 1 and 0 < self.ask_threshold <= 1):
            raise ValidationError("cache_threshold and ask_threshold must be in (0, 1]")
        if self.cache_ttl_s <= 0 or not 0 <= self.cache_refresh_s <= 3600:
            raise ValidationError("cache_ttl_s must be > 0, cache_refresh_s between 0 and 3600")
        self._check_documents()

    def _check_input_limits(self) -> None:
        """Rate limits and body limits (issue 6)."""
        names = ("rate_limit", "rate_limit_bulk", "rate_limit_health", "rate_limit_auth_failures")
        for name in names:
            if not 1 <= getattr(self, name) <= 10_000_000:
                raise ValidationError(f"{name} must be between 1 and 10000000 per minute")
        if not 1 <= self.max_json_depth <= 1000:
            raise ValidationError("max_json_depth must be between 1 and 1000")
        if self.max_body_bytes < 1 or self.max_string_length < 1:
            raise ValidationError("max_body_bytes and max_string_length must be at least 1")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValidationError(
                    f"FAENA_TRUSTED_PROXIES: {proxy!r} is not an IP address or network"
                ) from None

    def _check_llm(self) -> None:
        if self.llm_injection_action not in {"block", "flag", "off"}:
            raise ValidationError("llm_injection_action must be block, flag or off")
        if self.llm_pii_action not in {"redact", "block", "off"}:
            raise ValidationError("llm_pii_action must be redact, block or off")
        if not 0 < self.llm_injection_threshold <= 1 or not 0 <= self.llm_max_reasks <= 5:
            raise ValidationError(
                "llm_injection_threshold must be in (0, 1], llm_max_reasks between 0 and 5"
            )
        if self.llm_max_output_chars < 1 or self.llm_breaker_failures < 1:
            raise ValidationError("llm_max_output_chars and llm_breaker_failures must be >= 1")

    def _check_mail(self) -> None:
        if not 0.05 <= self.mail_scan_s <= 3600 or not 0 <= self.notify_group_s <= 60:
            raise ValidationError(
                "mail_scan_s must be between 0.05 and 3600 s, notify_group_s between 0 and 60 s"
            )
        if self.notify_breaker_failures < 1 or not 0 < self.notify_breaker_reset_s <= 3600:
            raise ValidationError(
                "notify_breaker_failures must be >= 1, notify_breaker_reset_s 0 to 3600 s"
            )

    def _check_documents(self) -> None:
        """Artefacts and documents (issue 9)."""
        if not 1 <= self.artefact_max_bytes <= 1 << 40:
            raise ValidationError("artefact_max_bytes must be between 1 and 2**40")
        if not 0 <= self.artefact_retention_days <= 36_500:
            raise ValidationError("artefact_retention_days must be between 0 (keep) and 36500")
        if not 1 <= self.document_workers <= 64:
            raise ValidationError("document_workers must be between 1 and 64")
        if not 0 < self.document_cache_days <= 36_500:
            raise ValidationError("document_cache_days must be between 0 and 36500")
        if not 0 <= self.document_memo_s <= 3600:
            raise ValidationError("document_memo_s must be between 0 (off) and 3600 seconds")

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
