"""The LLM layer's ports: the store of providers, policies, budgets and call records (mixed into
each Store adapter like the workflow and worker stores; contract suite
``tests/ai/test_store_contract.py``), the provider wire protocol, and secret resolution."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from faena.domain.llm import (
    Budget,
    CallRecord,
    ChatRequest,
    ProviderConfig,
    RoutingPolicy,
    ToolCall,
    UsageRow,
)

USAGE_GROUPS = frozenset({"model", "provider", "job", "workflow", "day"})


@dataclass(frozen=True, slots=True)
class BudgetScopes:
    """The budgets a call counts against: the tenant's (``tenant``/``*``) and, when the call is
    a workflow step, the workflow's."""

    tenant: str
    workflow: str | None = None


@dataclass(frozen=True, slots=True)
class ReserveParams:
    """Reserve ``amount`` USD on every budget of ``scopes``, atomically, if none is exhausted
    (``spent >= limit`` in its current period); otherwise change nothing."""

    scopes: BudgetScopes
    amount: float
    now: float


@dataclass(frozen=True, slots=True)
class ReserveResult:
    """``exhausted`` lists the budgets that refused (empty: the amount was reserved)."""

    exhausted: tuple[Budget, ...] = ()

    @property
    def reserved(self) -> bool:
        return not self.exhausted


@dataclass(frozen=True, slots=True)
class SettleParams:
    """Add ``delta`` USD (actual cost minus what was reserved; may be negative) to every budget of
    ``scopes``, unconditionally."""

    scopes: BudgetScopes
    delta: float
    now: float


@dataclass(frozen=True, slots=True)
class UsageParams:
    tenant: str
    since: float = 0.0
    group_by: str = "model"


@runtime_checkable
class LlmStore(Protocol):
    async def put_llm_provider(self, config: ProviderConfig) -> None:
        """Insert or replace (by tenant and name); ``created_at`` of a replaced one is kept."""

    async def get_llm_provider(self, tenant: str, name: str) -> ProviderConfig | None: ...

    async def list_llm_providers(self, tenant: str) -> list[ProviderConfig]:
        """By name."""

    async def delete_llm_provider(self, tenant: str, name: str) -> bool: ...

    async def put_llm_policy(self, policy: RoutingPolicy) -> None: ...

    async def get_llm_policy(self, tenant: str, name: str) -> RoutingPolicy | None: ...

    async def list_llm_policies(self, tenant: str) -> list[RoutingPolicy]: ...

    async def delete_llm_policy(self, tenant: str, name: str) -> bool: ...

    async def put_llm_budget(self, budget: Budget) -> Budget:
        """Insert or replace the limit and action; the spent amount and period are kept."""

    async def list_llm_budgets(self, tenant: str) -> list[Budget]:
        """By scope then name."""

    async def delete_llm_budget(self, tenant: str, scope: str, name: str) -> bool: ...

    async def reserve_llm_budget(self, params: ReserveParams) -> ReserveResult: ...

    async def settle_llm_budget(self, params: SettleParams) -> None: ...

    async def record_llm_call(self, record: CallRecord, settle: SettleParams | None = None) -> bool:
        """False if a record for (tenant, job_id, call_index) exists already (kept as is).
        ``settle`` adjusts the budgets in the same transaction (spending is settled either
        way)."""

    async def find_llm_call(
        self, tenant: str, job_id: str, call_index: int
    ) -> CallRecord | None: ...

    async def list_llm_calls(self, tenant: str, job_id: str) -> list[CallRecord]:
        """By call_index."""

    async def llm_usage(self, params: UsageParams) -> list[UsageRow]:
        """Totals of the tenant's calls since ``since``, grouped, by key."""


# -- providers ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProviderCall:
    """One request to one provider: the request's messages (already redacted), the model name
    as the provider knows it, and the key resolved from the tenant's secret."""

    config: ProviderConfig
    model: str
    request: ChatRequest
    api_key: str | None
    stream: bool = False
    timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class ProviderReply:
    content: str | None
    tool_calls: tuple[ToolCall, ...]
    tokens_in: int
    tokens_out: int
    finish_reason: str | None = None


class LlmProvider(Protocol):
    """A wire protocol (OpenAI Chat Completions, Anthropic Messages). Raises
    :class:`faena.domain.llm.ProviderError` when the provider does not answer."""

    async def complete(
        self, call: ProviderCall, on_token: Callable[[str], None] | None = None
    ) -> ProviderReply: ...

    async def aclose(self) -> None: ...


class SecretResolver(Protocol):
    """Turns a tenant's secret name into its value (the secrets service, audited)."""

    async def resolve(self, tenant: str, name: str, *, purpose: str | None = None) -> str: ...


class ChatCache(Protocol):
    """The answer cache (``faena.services.semantic_cache.SemanticCache``) as the LLM service
    uses it: values are :meth:`ChatResult.to_json` documents. ``semantic=False`` is an
    exact-match lookup (or a put) of ``text`` only: nothing is embedded."""

    async def get(
        self,
        tenant: str,
        namespace: str,
        text: str,
        *,
        threshold: float | None = None,
        semantic: bool = True,
    ) -> Any: ...

    async def put(
        self,
        tenant: str,
        namespace: str,
        text: str,
        value: dict[str, Any],
        ttl_s: float | None = None,
        *,
        semantic: bool = True,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class CallObservation:
    """One provider call as metrics see it; ``outcome``: ok, error, replayed, cached."""

    tenant: str
    provider: str
    model: str
    outcome: str
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    latency_s: float = 0.0


class LlmObserver(Protocol):
    """Metrics of the LLM layer (``faena.observability``)."""

    def llm_call(self, call: CallObservation) -> None: ...

    def llm_guardrail(self, name: str, verdict: str) -> None: ...


class InjectionClassifier(Protocol):
    """A pluggable prompt-injection classifier: a score in [0, 1] and the reasons."""

    def __call__(self, text: str) -> tuple[float, Sequence[str]]: ...


JsonDoc = dict[str, Any]
