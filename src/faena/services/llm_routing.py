"""Routing pieces of the LLM service: its settings, the per-provider circuit breaker, and how
model names, default routes and schema hints are resolved. Pure (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from faena.domain.guardrails import INJECTION_THRESHOLD
from faena.domain.llm import (
    ChatRequest,
    LlmRefused,
    Message,
    NoProvider,
    ProviderConfig,
    split_model,
)


@dataclass(frozen=True, slots=True)
class LlmConfig:
    """Guardrail and resilience settings (``FAENA_LLM_*``)."""

    max_reasks: int = 1  # re-asks on the same tier when the answer fails its schema
    max_output_chars: int = 32_000
    injection_threshold: float = INJECTION_THRESHOLD
    injection_action: str = "block"  # block | flag | off
    pii_action: str = "redact"  # redact | block | off
    national_ids: Mapping[str, str] | None = None
    breaker_failures: int = 3
    breaker_reset_s: float = 30.0
    max_retry_after_s: float = 20.0  # a longer Retry-After falls back instead of waiting
    backoff_s: float = 0.25
    default_output_tokens: int = 1024
    config_cache_s: float = 1.0  # how long a tenant's providers and policies are reused


class ProviderBreaker:
    """Per (tenant, provider): ``failures`` failed calls in a row open it for ``reset_s``; then
    it is half-open: exactly one call (the probe) is let through while the others still skip
    it, and the probe's outcome closes it or opens it again. A probe that ends without an
    outcome (cancelled, a refusal) is :meth:`released`, so the next call probes."""

    __slots__ = ("failures", "opened_until", "probing")

    def __init__(self) -> None:
        self.failures = 0
        self.opened_until = 0.0
        self.probing = False

    @property
    def is_open(self) -> bool:
        return self.opened_until > 0.0

    def allows(self, now: float) -> bool:
        """May a call go to the provider? True for a half-open breaker's probe: the caller
        must then report :meth:`succeeded`, :meth:`failed` or :meth:`released`."""
        if not self.is_open:
            return True
        if now < self.opened_until or self.probing:
            return False
        self.probing = True
        return True

    def failed(self, now: float, threshold: int, reset_s: float) -> None:
        self.failures += 1
        self.probing = False
        if self.failures >= threshold:
            self.opened_until = now + reset_s

    def succeeded(self) -> None:
        self.failures = 0
        self.opened_until = 0.0
        self.probing = False

    def released(self) -> None:
        self.probing = False


def qualify(model: str, providers: Mapping[str, ProviderConfig]) -> str:
    """``provider/model``, finding the provider of a bare model name."""
    provider, name = split_model(model)
    if provider is not None and provider in providers:
        return f"{provider}/{name}"
    offering = [p for p in providers.values() if model in p.models]
    if offering:
        return f"{offering[0].name}/{model}"
    if provider is not None:
        raise LlmRefused(f"model {model!r}: no provider named {provider!r} is configured")
    if len(providers) == 1:
        return f"{next(iter(providers))}/{model}"
    raise LlmRefused(f"model {model!r} is not offered by any configured provider")


def first_model(providers: Mapping[str, ProviderConfig]) -> str:
    for p in providers.values():
        if p.models:
            return f"{p.name}/{next(iter(p.models))}"
    raise NoProvider(
        "no model to route to: give a model, a routing policy, or list models on a provider"
    )


def with_schema_hint(request: ChatRequest) -> tuple[Message, ...]:
    if request.response_schema is None or request.tools:
        return request.messages
    hint = Message(
        "system",
        "Answer with only a JSON value that matches this JSON Schema, no prose: "
        + orjson.dumps(request.response_schema).decode(),
    )
    return (hint, *request.messages)
