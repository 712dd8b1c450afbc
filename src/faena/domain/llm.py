"""The LLM layer's vocabulary: chat messages, requests, results, providers, routing policies,
budgets and recorded calls. Pure: no I/O, so the service, the stores and the API share it."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import orjson

from faena.domain.errors import Unavailable, ValidationError

ROLES = frozenset({"system", "user", "assistant", "tool"})
PROVIDER_KINDS = frozenset({"openai", "anthropic"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of the arguments


@dataclass(frozen=True, slots=True)
class Message:
    role: str  # system | user | assistant | tool
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class SemanticMatch:
    """A step's opt-in to semantic cache hits: a cached answer is reused for a *similar* last
    user message (cosine similarity of embeddings >= ``threshold``) when everything else of
    the request (system prompt, earlier messages, model or policy, sampling, schema) is equal.
    Only for questions whose answer does not depend on details such as names or dates."""

    threshold: float | None = None  # None: the server's FAENA_CACHE_THRESHOLD


@dataclass(frozen=True, slots=True)
class ChatRequest:
    messages: tuple[Message, ...]
    model: str | None = None  # "provider/model" or a model name; None: the routing policy
    policy: str | None = None  # a named routing policy of the tenant
    temperature: float | None = None
    max_tokens: int | None = None
    response_schema: dict[str, Any] | None = None
    tools: tuple[ToolSpec, ...] = ()
    cache: bool = True  # exact-match answer cache (temperature 0/unset, no tools)
    cache_semantic: SemanticMatch | None = None  # opt-in similarity hits (see SemanticMatch)
    cache_ttl_s: float | None = None  # None: the server's FAENA_CACHE_TTL_S


@dataclass(frozen=True, slots=True)
class ChatResult:
    content: str | None
    tool_calls: tuple[ToolCall, ...]
    model: str
    provider: str
    tokens_in: int
    tokens_out: int
    cost: float
    cached: bool = False
    replayed: bool = False
    output: Any = None  # the parsed JSON when response_schema was given
    guardrails: tuple[dict[str, Any], ...] = ()  # the verdicts, in the order they were taken
    cache_match: str | None = None  # a cached answer: "exact" or "semantic"
    cache_similarity: float | None = None  # a cached answer: 1.0 exact, else the cosine

    def to_json(self) -> dict[str, Any]:
        """The stored/replayed form (call records, the semantic cache)."""
        return {
            "content": self.content,
            "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls
            ],
            "model": self.model,
            "provider": self.provider,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost": self.cost,
            "output": self.output,
            "guardrails": list(self.guardrails),
        }

    @staticmethod
    def from_json(
        doc: dict[str, Any],
        *,
        cached: bool = False,
        replayed: bool = False,
        cache_match: str | None = None,
        cache_similarity: float | None = None,
    ) -> ChatResult:
        return ChatResult(
            content=doc.get("content"),
            tool_calls=tuple(
                ToolCall(str(c["id"]), str(c["name"]), dict(c.get("arguments") or {}))
                for c in doc.get("tool_calls") or ()
            ),
            model=str(doc.get("model", "")),
            provider=str(doc.get("provider", "")),
            tokens_in=int(doc.get("tokens_in", 0)),
            tokens_out=int(doc.get("tokens_out", 0)),
            cost=float(doc.get("cost", 0.0)),
            cached=cached,
            replayed=replayed,
            output=doc.get("output"),
            guardrails=tuple(doc.get("guardrails") or ()),
            cache_match=cache_match,
            cache_similarity=cache_similarity,
        )


# -- configuration -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens, in and out."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.input_per_mtok + tokens_out * self.output_per_mtok) / 1_000_000


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One provider endpoint of a tenant: ``kind`` is the wire protocol (``openai`` for every
    OpenAI-compatible Chat Completions server, ``anthropic`` for the Messages API)."""

    tenant: str
    name: str
    kind: str
    base_url: str
    api_key_secret: str | None = None
    models: dict[str, ModelPrice] = field(default_factory=dict)
    timeout_s: float = 60.0
    max_retries: int = 2
    created_at: float = 0.0
    updated_at: float = 0.0

    def price(self, model: str) -> ModelPrice:
        return self.models.get(model, ModelPrice())


@dataclass(frozen=True, slots=True)
class Tier:
    """One rung of a routing policy: ``model`` is ``provider/model``; ``fallbacks`` are tried
    in order when the provider errors, times out or rate-limits."""

    model: str
    fallbacks: tuple[str, ...] = ()
    max_prompt_chars: int | None = None  # a longer prompt skips this tier


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """Tiers from cheap to strong: the first tier whose size threshold the prompt fits is tried
    first; an answer that fails validation escalates to the next tier."""

    tenant: str
    name: str
    tiers: tuple[Tier, ...]
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Budget:
    """A spending limit in USD over a period: scope ``tenant`` (name ``*``) or ``workflow``
    (name = the workflow). ``on_exhausted``: ``refuse`` fails the call, ``downgrade`` routes it
    to ``downgrade_model`` instead."""

    tenant: str
    scope: str
    name: str
    limit_usd: float
    period: str = "month"  # day | month | total
    on_exhausted: str = "refuse"
    downgrade_model: str | None = None
    spent_usd: float = 0.0
    period_start: float = 0.0
    updated_at: float = 0.0


BUDGET_SCOPES = frozenset({"tenant", "workflow"})
BUDGET_PERIODS = frozenset({"day", "month", "total"})
BUDGET_ACTIONS = frozenset({"refuse", "downgrade"})


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One completed provider call: the replay key is (tenant, job_id, attempt-independent
    call_index); ``request_hash`` guards against replaying a call for a different request."""

    id: str
    tenant: str
    job_id: str | None
    attempt: int
    call_index: int
    request_hash: str
    provider: str
    model: str
    response: dict[str, Any]
    tokens_in: int
    tokens_out: int
    cost: float
    latency_ms: float
    workflow: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class Quote:
    """What a call would cost before it is made, at the first model of its route: the prompt
    (estimated like a budget reservation: characters / 3 tokens, tool definitions included)
    and each token of the answer."""

    model: str
    prompt_usd: float
    per_output_token_usd: float


@dataclass(frozen=True, slots=True)
class UsageRow:
    key: str
    calls: int
    tokens_in: int
    tokens_out: int
    cost: float


# -- checks ------------------------------------------------------------------------------------


def check_name(what: str, name: str) -> str:
    if not _NAME.match(name):
        raise ValidationError(
            f"bad {what} name {name!r}: 1-64 letters, digits, '_', '.', '-', starting with a "
            "letter or digit"
        )
    return name


def split_model(model: str) -> tuple[str | None, str]:
    """``provider/model`` → (provider, model); a bare model name → (None, model). Model names
    may themselves hold slashes (``openrouter/meta-llama/llama-3``): only the first splits."""
    if "/" in model:
        provider, _, name = model.partition("/")
        if provider and name:
            return provider, name
    return None, model


def request_hash(request: ChatRequest) -> str:
    """A stable digest of what a call asks, so a replay never answers a different question."""
    doc = {
        "messages": [
            [m.role, m.content, [[c.id, c.name, c.arguments] for c in m.tool_calls], m.tool_call_id]
            for m in request.messages
        ],
        "model": request.model,
        "policy": request.policy,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "schema": request.response_schema,
        "tools": [[t.name, t.description, t.parameters] for t in request.tools],
    }
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _normal(text: str | None) -> str:
    """The cache's form of a message: NFC, ``\\r\\n`` as ``\\n``, outer whitespace stripped.
    Case and inner spacing are kept: they can change an answer."""
    return unicodedata.normalize("NFC", (text or "").replace("\r\n", "\n")).strip()


def _shape(request: ChatRequest) -> dict[str, Any]:
    """Everything of a request but its messages that can change the answer."""
    return {
        "model": request.model,
        "policy": request.policy,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "schema": request.response_schema,
        "tools": [[t.name, t.description, t.parameters] for t in request.tools],
    }


def _messages_doc(messages: tuple[Message, ...]) -> list[Any]:
    return [
        [m.role, _normal(m.content), [[c.name, c.arguments] for c in m.tool_calls]]
        for m in messages
    ]


def cache_digest(request: ChatRequest) -> str:
    """The exact-match cache key: a SHA-256 of the whole normalized request (every message
    with its role, model or policy, temperature, max_tokens, response_schema, tools)."""
    doc = {**_shape(request), "messages": _messages_doc(request.messages)}
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


def semantic_scope(request: ChatRequest) -> tuple[str, str] | None:
    """(the context digest, the last user message) of a request whose last message is the
    user's: semantic hits are only looked for among entries with the same context digest —
    same system prompt, earlier messages, model or policy, sampling and schema."""
    *context, last = request.messages
    if last.role != "user" or not (last.content or "").strip():
        return None
    doc = {**_shape(request), "context": _messages_doc(tuple(context))}
    digest = hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return digest, last.content or ""


def prompt_chars(request: ChatRequest) -> int:
    return sum(len(m.content or "") for m in request.messages)


def estimate_tokens(text_chars: int) -> int:
    """A conservative token estimate (about 4 characters a token) for budget reservations."""
    return max(1, text_chars // 3)


# -- errors ------------------------------------------------------------------------------------


class ProviderError(Exception):
    """A provider call that did not answer: ``retryable`` for rate limits (429), server errors
    (5xx), timeouts and broken connections; ``retry_after`` is the provider's ``Retry-After``."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class LlmRefused(ValidationError):
    """The call was refused before or after reaching a provider (budget, guardrail, schema):
    the step fails with this reason and is not retried. ``guardrails`` are the verdicts taken
    so far (recorded on the failed job)."""

    code = "llm_refused"

    def __init__(self, message: str, guardrails: tuple[dict[str, Any], ...] = ()) -> None:
        super().__init__(message)
        self.guardrails = guardrails


class ProvidersUnavailable(Unavailable):
    """No provider of the route answered (errors, timeouts, rate limits, open circuits): a job
    attempt fails retryably."""

    code = "llm_unavailable"


class BudgetExhausted(LlmRefused):
    code = "budget_exhausted"


class GuardrailBlocked(LlmRefused):
    code = "guardrail_blocked"


class NoProvider(LlmRefused):
    code = "llm_not_configured"


# -- budget periods ----------------------------------------------------------------------------


def period_start(period: str, now: float) -> float:
    """The start (UTC epoch seconds) of the budget period that holds ``now``."""
    if period == "day":
        return float(int(now // 86400) * 86400)
    if period == "month":
        import datetime as dt

        d = dt.datetime.fromtimestamp(now, dt.UTC)
        return dt.datetime(d.year, d.month, 1, tzinfo=dt.UTC).timestamp()
    return 0.0


def roll_period(budget: Budget, now: float) -> Budget:
    """The budget with its spending reset when ``now`` is in a later period."""
    from dataclasses import replace

    start = period_start(budget.period, now)
    if start > budget.period_start:
        return replace(budget, spent_usd=0.0, period_start=start)
    return budget


def budget_applies(budget: Budget, tenant: str, workflow: str | None) -> bool:
    if budget.tenant != tenant:
        return False
    if budget.scope == "tenant":
        return True
    return budget.scope == "workflow" and workflow is not None and budget.name == workflow


def usage_key(record: CallRecord, group_by: str) -> str:
    if group_by == "provider":
        return record.provider
    if group_by == "job":
        return record.job_id or "-"
    if group_by == "workflow":
        return record.workflow or "-"
    if group_by == "day":
        import datetime as dt

        return dt.datetime.fromtimestamp(record.created_at, dt.UTC).date().isoformat()
    return f"{record.provider}/{record.model}"
