"""Prometheus metrics of the LLM layer: calls, tokens and cost per provider and model (cost
also per tenant), call latency, and guardrail verdicts."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from faena.ports.llm import CallObservation

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class LlmMetrics:
    """The :class:`~faena.ports.llm.LlmObserver` that feeds ``/metrics``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "faena_llm_calls",
            "LLM provider calls by outcome (ok, error, replayed, cached).",
            ["provider", "model", "outcome"],
            registry=registry,
        )
        self.tokens = Counter(
            "faena_llm_tokens",
            "Tokens sent to (in) and received from (out) LLM providers.",
            ["provider", "model", "direction"],
            registry=registry,
        )
        self.cost = Counter(
            "faena_llm_cost_usd",
            "What LLM calls cost, in USD, at the configured prices.",
            ["tenant", "provider", "model"],
            registry=registry,
        )
        self.latency = Histogram(
            "faena_llm_call_seconds",
            "Latency of LLM provider calls.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.guardrails = Counter(
            "faena_llm_guardrail_verdicts",
            "Guardrail verdicts (pass, redacted, flagged, blocked, rejected, ...).",
            ["guardrail", "verdict"],
            registry=registry,
        )

    def llm_call(self, call: CallObservation) -> None:
        self.calls.labels(call.provider, call.model, call.outcome).inc()
        if call.outcome in {"ok", "error"}:
            self.latency.labels(call.provider).observe(call.latency_s)
        if call.tokens_in or call.tokens_out:
            self.tokens.labels(call.provider, call.model, "in").inc(call.tokens_in)
            self.tokens.labels(call.provider, call.model, "out").inc(call.tokens_out)
        if call.cost:
            self.cost.labels(call.tenant, call.provider, call.model).inc(call.cost)

    def llm_guardrail(self, name: str, verdict: str) -> None:
        self.guardrails.labels(name, verdict).inc()
