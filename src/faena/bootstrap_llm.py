"""The composition root's LLM part (issue 8): the provider adapters, the LLM service and the
``llm`` kind, built from settings and the runtime's store, secrets and telemetry.

The secret service and the semantic cache belong to other areas and may be built after this
runs, so they are looked up on the runtime when first used (the cache: ``runtime.llm
.set_cache``)."""

from __future__ import annotations

import contextlib
import importlib
import inspect
from typing import TYPE_CHECKING, Any

from faena.config import Settings
from faena.domain.errors import ValidationError
from faena.domain.guardrails import DEFAULT_NATIONAL_IDS
from faena.ports.llm import InjectionClassifier, LlmStore
from faena.services.llm import LlmService
from faena.services.llm_kind import LlmKind
from faena.services.llm_routing import LlmConfig

if TYPE_CHECKING:
    from faena.bootstrap import Runtime
    from faena.ports.executor import KindHandler


def llm_config(settings: Settings) -> LlmConfig:
    ids = dict(DEFAULT_NATIONAL_IDS)
    for part in settings.llm_pii_national_ids.split(";"):
        if part.strip():
            name, sep, pattern = part.partition("=")
            if not sep or not name.strip() or not pattern.strip():
                raise ValidationError("llm_pii_national_ids must read NAME=REGEX;NAME=REGEX")
            ids[name.strip()] = pattern.strip()
    return LlmConfig(
        max_reasks=settings.llm_max_reasks,
        max_output_chars=settings.llm_max_output_chars,
        injection_threshold=settings.llm_injection_threshold,
        injection_action=settings.llm_injection_action,
        pii_action=settings.llm_pii_action,
        national_ids=ids,
        breaker_failures=settings.llm_breaker_failures,
        breaker_reset_s=settings.llm_breaker_reset_s,
        max_retry_after_s=settings.llm_max_retry_after_s,
    )


def load_classifier(spec: str) -> InjectionClassifier | None:
    """``FAENA_LLM_INJECTION_CLASSIFIER=module:callable``: the callable (``fn(text) -> (score,
    reasons)``), or a class, instantiated with no arguments, whose instances are that callable.
    ``""``: None (the built-in heuristics)."""
    if not spec.strip():
        return None
    module_name, sep, attr = spec.strip().partition(":")
    if not sep or not module_name or not attr:
        raise ValidationError(f"llm_injection_classifier must read module:callable, not {spec!r}")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise ValidationError(f"llm_injection_classifier {spec!r}: {exc}") from None
    if inspect.isclass(found):
        found = found()
    if not callable(found):
        raise ValidationError(f"llm_injection_classifier {spec!r} is not callable")
    classifier: InjectionClassifier = found
    return classifier


class _RuntimeSecrets:
    """The runtime's SecretService, found when first needed."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def resolve(self, tenant: str, name: str, *, purpose: str | None = None) -> str:
        service = self.runtime.secrets
        if service is None:
            raise ValidationError("this server keeps no secrets (set FAENA_SECRET_KEY)")
        value: str = await service.resolve(tenant, name, purpose=purpose)
        return value


def build_llm(settings: Settings, runtime: Runtime) -> LlmService:
    from faena.adapters.llm import AnthropicProvider, OpenAIProvider

    store: LlmStore = runtime.store  # type: ignore[assignment]  # every adapter is one
    service = LlmService(
        store,
        {"openai": OpenAIProvider(), "anthropic": AnthropicProvider()},
        secrets=_RuntimeSecrets(runtime),
        config=llm_config(settings),
        classifier=load_classifier(settings.llm_injection_classifier),
    )
    telemetry = runtime.telemetry
    if telemetry is not None and telemetry.metrics_on:
        from faena.observability.llm import LlmMetrics

        # ValueError: a telemetry shared by several runtimes (tests) has the metrics already
        with contextlib.suppress(ValueError):
            service.set_observer(LlmMetrics(telemetry.metrics.registry))
    return service


def llm_kinds(settings: Settings, runtime: Runtime) -> dict[str, KindHandler]:
    """The ``llm`` kind on the runtime's LLM service (built here, kept as ``runtime.llm``)."""
    service = build_llm(settings, runtime)
    runtime.llm = service
    store: Any = runtime.store

    async def workflow_of(tenant: str, run_id: str) -> str | None:
        run = await store.get_run(tenant, run_id)
        return None if run is None else str(run.workflow)

    return {"llm": LlmKind(service, workflow_of)}
