"""JSON documents (the ``llm`` kind's payload, the API's bodies) → LLM domain objects, with a
precise message for each mistake. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from faena.domain.errors import ValidationError
from faena.domain.guardrails import check_schema
from faena.domain.llm import (
    BUDGET_ACTIONS,
    BUDGET_PERIODS,
    BUDGET_SCOPES,
    PROVIDER_KINDS,
    ROLES,
    Budget,
    ChatRequest,
    Message,
    ModelPrice,
    ProviderConfig,
    RoutingPolicy,
    SemanticMatch,
    Tier,
    ToolCall,
    ToolSpec,
    check_name,
)

MAX_MESSAGES = 500
MAX_PROMPT_CHARS = 1_000_000
MAX_TIERS = 8
_CHAT_FIELDS = frozenset(
    {
        "messages",
        "prompt",
        "system",
        "model",
        "policy",
        "temperature",
        "max_tokens",
        "response_schema",
        "tools",
        "cache",
        "stream",
    }
)


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(f"{where} must be a JSON object")
    return value


def _unknown(doc: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    extra = sorted(set(doc) - known)
    if extra:
        raise ValidationError(f"{where}: unknown field {extra[0]!r}")


def _str(doc: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    value = doc.get(key)
    if value is None:
        if required:
            raise ValidationError(f"{where}.{key} is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{where}.{key} must be a non-empty string")
    return value


def _number(doc: Mapping[str, Any], key: str, where: str, lo: float, hi: float) -> float | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ValidationError(f"{where}.{key} must be a number between {lo:g} and {hi:g}")
    return float(value)


def _message(raw: Any, where: str) -> Message:
    doc = _obj(raw, where)
    _unknown(doc, frozenset({"role", "content", "tool_calls", "tool_call_id"}), where)
    role = doc.get("role")
    if role not in ROLES:
        raise ValidationError(f"{where}.role must be one of {', '.join(sorted(ROLES))}")
    content = doc.get("content")
    if content is not None and not isinstance(content, str):
        raise ValidationError(f"{where}.content must be a string")
    calls: list[ToolCall] = []
    for i, c in enumerate(doc.get("tool_calls") or ()):
        cd = _obj(c, f"{where}.tool_calls[{i}]")
        args = cd.get("arguments") or {}
        if not isinstance(args, Mapping):
            raise ValidationError(f"{where}.tool_calls[{i}].arguments must be an object")
        calls.append(
            ToolCall(
                str(_str(cd, "id", f"{where}.tool_calls[{i}]", required=True)),
                str(_str(cd, "name", f"{where}.tool_calls[{i}]", required=True)),
                dict(args),
            )
        )
    tool_call_id = _str(doc, "tool_call_id", where)
    if role == "tool" and tool_call_id is None:
        raise ValidationError(f"{where}: a tool message needs tool_call_id")
    if content is None and not calls:
        raise ValidationError(f"{where}.content is required")
    return Message(role, content, tuple(calls), tool_call_id)


def _messages(doc: Mapping[str, Any], where: str) -> list[Message]:
    messages: list[Message] = []
    system = _str(doc, "system", where)
    if system is not None:
        messages.append(Message("system", system))
    raw = doc.get("messages")
    prompt = doc.get("prompt")
    if raw is not None and prompt is not None:
        raise ValidationError(f"{where}: give messages or prompt, not both")
    if raw is not None:
        if not isinstance(raw, list) or not raw:
            raise ValidationError(f"{where}.messages must be a non-empty list")
        if len(raw) > MAX_MESSAGES:
            raise ValidationError(f"{where}.messages holds more than {MAX_MESSAGES} messages")
        messages.extend(_message(m, f"{where}.messages[{i}]") for i, m in enumerate(raw))
    elif prompt is not None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValidationError(f"{where}.prompt must be a non-empty string")
        messages.append(Message("user", prompt))
    else:
        raise ValidationError(f"{where}: messages or prompt is required")
    if sum(len(m.content or "") for m in messages) > MAX_PROMPT_CHARS:
        raise ValidationError(f"{where}: the prompt is longer than {MAX_PROMPT_CHARS} characters")
    return messages


def _tools(doc: Mapping[str, Any], where: str) -> list[ToolSpec]:
    tools: list[ToolSpec] = []
    for i, t in enumerate(doc.get("tools") or ()):
        td = _obj(t, f"{where}.tools[{i}]")
        params = dict(_obj(td.get("parameters") or {"type": "object"}, f"{where}.tools[{i}]"))
        tools.append(
            ToolSpec(
                str(_str(td, "name", f"{where}.tools[{i}]", required=True)),
                str(td.get("description") or ""),
                params,
            )
        )
    return tools


def parse_chat(payload: Any, where: str = "payload") -> ChatRequest:
    """The ``llm`` kind's payload (and ``POST /v1/llm/chat``): ``messages`` or ``prompt``
    (with an optional ``system``), ``model`` or ``policy``, sampling and output options."""
    doc = _obj(payload, where)
    _unknown(doc, _CHAT_FIELDS, where)
    messages = _messages(doc, where)
    model = _str(doc, "model", where)
    policy = _str(doc, "policy", where)
    if model is not None and policy is not None:
        raise ValidationError(f"{where}: give model or policy, not both")
    if policy is not None:
        check_name("policy", policy)
    max_tokens = doc.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool)
        or not isinstance(max_tokens, int)
        or not 1 <= max_tokens <= 1_000_000
    ):
        raise ValidationError(f"{where}.max_tokens must be an integer between 1 and 1000000")
    schema = doc.get("response_schema")
    if schema is not None:
        schema = dict(_obj(schema, f"{where}.response_schema"))
        problem = check_schema(schema)
        if problem:
            raise ValidationError(f"{where}: {problem}")
    tools = _tools(doc, where)
    cache, semantic, ttl_s = _cache(doc.get("cache", True), f"{where}.cache")
    stream = doc.get("stream", True)
    if not isinstance(stream, bool):
        raise ValidationError(f"{where}.stream must be true or false")
    return ChatRequest(
        messages=tuple(messages),
        model=model,
        policy=policy,
        temperature=_number(doc, "temperature", where, 0.0, 2.0),
        max_tokens=max_tokens,
        response_schema=schema,
        tools=tuple(tools),
        cache=cache,
        cache_semantic=semantic,
        cache_ttl_s=ttl_s,
    )


def _cache(value: Any, where: str) -> tuple[bool, SemanticMatch | None, float | None]:
    """``cache``: ``true`` (the default: exact-match hits only), ``false`` (no cache), or
    ``{"semantic": true, "threshold": 0.95, "ttl_s": 3600}`` (opt in to similarity hits)."""
    if isinstance(value, bool):
        return value, None, None
    doc = _obj(value, where)
    _unknown(doc, frozenset({"semantic", "threshold", "ttl_s"}), where)
    semantic = doc.get("semantic", False)
    if not isinstance(semantic, bool):
        raise ValidationError(f"{where}.semantic must be true or false")
    threshold = _number(doc, "threshold", where, 0.5, 1.0)
    if threshold is not None and not semantic:
        raise ValidationError(f"{where}.threshold needs semantic: true")
    ttl_s = _number(doc, "ttl_s", where, 1.0, 366 * 86_400.0)
    return True, SemanticMatch(threshold) if semantic else None, ttl_s


def parse_provider(tenant: str, name: str, body: Any, now: float) -> ProviderConfig:
    """``PUT /v1/llm/providers/{name}``: ``kind``, ``base_url``, ``api_key_secret``, ``models``
    (``{"name": {"input_per_mtok": x, "output_per_mtok": y}}``), ``timeout_s``, ``max_retries``."""
    check_name("provider", name)
    where = "body"
    doc = _obj(body, where)
    _unknown(
        doc,
        frozenset({"kind", "base_url", "api_key_secret", "models", "timeout_s", "max_retries"}),
        where,
    )
    kind = _str(doc, "kind", where, required=True)
    if kind not in PROVIDER_KINDS:
        raise ValidationError(f"body.kind must be one of {', '.join(sorted(PROVIDER_KINDS))}")
    base_url = str(_str(doc, "base_url", where, required=True))
    parts = urlsplit(base_url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValidationError("body.base_url must be an http(s) URL")
    secret = _str(doc, "api_key_secret", where)
    if secret is not None:
        check_name("secret", secret)
    models: dict[str, ModelPrice] = {}
    raw_models = doc.get("models") or {}
    if isinstance(raw_models, list):  # a plain list of names: free models
        raw_models = {str(m): {} for m in raw_models}
    for model, price in _obj(raw_models, "body.models").items():
        if not model or len(model) > 200:
            raise ValidationError("body.models: a model name must be 1-200 characters")
        pd = _obj(price or {}, f"body.models.{model}")
        _unknown(pd, frozenset({"input_per_mtok", "output_per_mtok"}), f"body.models.{model}")
        models[model] = ModelPrice(
            _number(pd, "input_per_mtok", f"body.models.{model}", 0, 1e6) or 0.0,
            _number(pd, "output_per_mtok", f"body.models.{model}", 0, 1e6) or 0.0,
        )
    timeout = _number(doc, "timeout_s", where, 0.05, 3600)
    retries = doc.get("max_retries", 2)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
        raise ValidationError("body.max_retries must be an integer between 0 and 10")
    return ProviderConfig(
        tenant=tenant,
        name=name,
        kind=kind,
        base_url=base_url,
        api_key_secret=secret,
        models=models,
        timeout_s=60.0 if timeout is None else timeout,
        max_retries=retries,
        created_at=now,
        updated_at=now,
    )


def parse_policy(tenant: str, name: str, body: Any, now: float) -> RoutingPolicy:
    """``PUT /v1/llm/policies/{name}``: ``{"tiers": [{"model": "p/m", "fallbacks": [...],
    "max_prompt_chars": n}, ...]}`` from cheap to strong."""
    check_name("policy", name)
    doc = _obj(body, "body")
    _unknown(doc, frozenset({"tiers"}), "body")
    raw = doc.get("tiers")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_TIERS:
        raise ValidationError(f"body.tiers must be a list of 1 to {MAX_TIERS} tiers")
    tiers: list[Tier] = []
    for i, t in enumerate(raw):
        where = f"body.tiers[{i}]"
        td = _obj({"model": t} if isinstance(t, str) else t, where)
        _unknown(td, frozenset({"model", "fallbacks", "max_prompt_chars"}), where)
        model = str(_str(td, "model", where, required=True))
        fallbacks = td.get("fallbacks") or []
        if not isinstance(fallbacks, list) or not all(isinstance(f, str) and f for f in fallbacks):
            raise ValidationError(f"{where}.fallbacks must be a list of model names")
        limit = td.get("max_prompt_chars")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise ValidationError(f"{where}.max_prompt_chars must be a positive integer")
        tiers.append(Tier(model, tuple(fallbacks), limit))
    return RoutingPolicy(tenant, name, tuple(tiers), now)


def parse_budget(tenant: str, body: Any, now: float) -> Budget:
    """One entry of ``PUT /v1/llm/budgets``: ``scope`` (tenant | workflow), ``name`` (the
    workflow; ``*`` for the tenant), ``limit_usd``, ``period``, ``on_exhausted``,
    ``downgrade_model``."""
    where = "budget"
    doc = _obj(body, where)
    _unknown(
        doc,
        frozenset({"scope", "name", "limit_usd", "period", "on_exhausted", "downgrade_model"}),
        where,
    )
    scope = doc.get("scope", "tenant")
    if scope not in BUDGET_SCOPES:
        raise ValidationError("budget.scope must be tenant or workflow")
    name = doc.get("name", "*" if scope == "tenant" else None)
    if scope == "tenant":
        name = "*"
    elif not isinstance(name, str):
        raise ValidationError("budget.name (the workflow) is required for a workflow budget")
    else:
        check_name("workflow", name)
    limit = _number(doc, "limit_usd", where, 0, 1e9)
    if limit is None:
        raise ValidationError("budget.limit_usd is required")
    period = doc.get("period", "month")
    if period not in BUDGET_PERIODS:
        raise ValidationError(f"budget.period must be one of {', '.join(sorted(BUDGET_PERIODS))}")
    action = doc.get("on_exhausted", "refuse")
    if action not in BUDGET_ACTIONS:
        raise ValidationError("budget.on_exhausted must be refuse or downgrade")
    downgrade = _str(doc, "downgrade_model", where)
    if action == "downgrade" and downgrade is None:
        raise ValidationError("budget.downgrade_model is required when on_exhausted=downgrade")
    return Budget(
        tenant=tenant,
        scope=scope,
        name=name,
        limit_usd=limit,
        period=period,
        on_exhausted=action,
        downgrade_model=downgrade,
        updated_at=now,
    )
