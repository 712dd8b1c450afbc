"""The LLM service: one chat call = replay check → input guardrails → cache → route → budget
reservation → provider calls (retries, fallbacks, circuit breakers, escalation on a failed
validation) → output checks → settle the budget → record the call.

Replay: a call made for a job is recorded under (tenant, job_id, call_index) with the hash of
its request; a retried job asking the same call_index with the same request gets the recorded
answer (``replayed=True``) and pays nothing.

Budgets: before a call the service reserves its estimated cost (prompt ≈ chars/3 tokens in,
``max_tokens`` or 1024 out, at the first model's price) on every budget that applies (the
tenant's and the workflow's), in one atomic store operation that refuses when a budget is
already spent (``spent >= limit``); afterwards it settles the difference with the real cost.
So concurrent calls see each other's reservations, and a budget is overspent by at most the
real cost of the one call that crossed the limit.

Cache (requests at temperature 0/unset without tools): by default an answer is reused only
for the *same* request — a SHA-256 of every normalized message with its role, the model or
policy, the sampling options, the response schema (:func:`~faena.domain.llm.cache_digest`).
A step that opts in (``cache: {semantic: true, threshold: 0.95}``) also reuses the answer of
a similar last user message, looked for only among requests with the same system prompt,
earlier messages, model or policy, sampling and schema
(:func:`~faena.domain.llm.semantic_scope`). Two e-mails that differ in names and dates embed
at 0.93-0.99 cosine, so similarity is never the default.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import structlog

from faena.domain.errors import NotFound, ValidationError
from faena.domain.guardrails import (
    PiiDetector,
    Verdict,
    extract_json,
    injection_score,
    schema_errors,
)
from faena.domain.ids import new_id
from faena.domain.llm import (
    Budget,
    BudgetExhausted,
    CallRecord,
    ChatRequest,
    ChatResult,
    GuardrailBlocked,
    LlmRefused,
    Message,
    NoProvider,
    ProviderConfig,
    ProviderError,
    ProvidersUnavailable,
    Quote,
    RoutingPolicy,
    Tier,
    UsageRow,
    cache_digest,
    estimate_tokens,
    prompt_chars,
    request_hash,
    semantic_scope,
    split_model,
)
from faena.ports.clock import Clock, SystemClock
from faena.ports.llm import (
    USAGE_GROUPS,
    BudgetScopes,
    CallObservation,
    ChatCache,
    InjectionClassifier,
    LlmObserver,
    LlmProvider,
    LlmStore,
    ProviderCall,
    ProviderReply,
    ReserveParams,
    SecretResolver,
    SettleParams,
    UsageParams,
)
from faena.services.llm_routing import (
    LlmConfig,
    ProviderBreaker,
    first_model,
    qualify,
    with_schema_hint,
)

DEFAULT_POLICY = "default"
EXACT_NAMESPACE = "llm.exact"  # entries keyed by cache_digest, never embedded
SEMANTIC_PREFIX = "llm.similar."  # + the context digest: one namespace per context
MAX_SEMANTIC_TEXT = 32_000
log = structlog.get_logger("faena.llm")


@dataclass(frozen=True, slots=True)
class _CachePlan:
    """Where a request's answer is looked up and stored."""

    digest: str  # the exact key, in EXACT_NAMESPACE
    semantic: tuple[str, str] | None  # (namespace, last user message) when opted in
    threshold: float | None
    ttl_s: float | None


@dataclass
class _Route:
    tiers: tuple[Tier, ...]
    start: int
    providers: dict[str, ProviderConfig]


@dataclass
class _Spend:
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    calls: int = 0
    latency_s: float = 0.0


@dataclass
class _Attempt:
    """One chat call in progress (what it has paid and seen so far)."""

    tenant: str
    request: ChatRequest
    on_token: Callable[[str], None] | None
    verdicts: list[Verdict] = field(default_factory=list)
    spend: _Spend = field(default_factory=_Spend)
    streamed: bool = False  # tokens went out since the last mark

    def token(self, text: str) -> None:
        if self.on_token is not None:
            self.streamed = self.streamed or bool(text)
            self.on_token(text)

    def mark(self, what: str) -> None:
        """A line in the stream saying what happened to the tokens before it (a rejected
        answer, a failed attempt), so the log reads as what happened."""
        if self.on_token is not None and self.streamed:
            self.on_token(f"\n--- {what} ---\n")
            self.streamed = False


class LlmService:
    def __init__(
        self,
        store: LlmStore,
        providers: Mapping[str, LlmProvider],
        *,
        secrets: SecretResolver | None = None,
        cache: ChatCache | None = None,
        clock: Clock | None = None,
        config: LlmConfig | None = None,
        classifier: InjectionClassifier | None = None,
        observer: LlmObserver | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._providers = dict(providers)
        self._secrets = secrets
        self._cache = cache
        self._clock = clock or SystemClock()
        self.config = config or LlmConfig()
        self._classifier: InjectionClassifier = classifier or injection_score
        self._observer = observer
        self._sleep = sleep
        self._pii = PiiDetector(self.config.national_ids)
        self._breakers: dict[tuple[str, str], ProviderBreaker] = {}
        self._puts: set[asyncio.Task[None]] = set()  # cache writes still running
        # tenant -> (expires, providers by name, policies looked up so far by name)
        self._configs: dict[
            str, tuple[float, dict[str, ProviderConfig], dict[str, RoutingPolicy | None]]
        ] = {}

    def set_cache(self, cache: ChatCache | None) -> None:
        self._cache = cache

    def set_observer(self, observer: LlmObserver | None) -> None:
        self._observer = observer

    async def aclose(self) -> None:
        """Finish the cache writes in flight, close the providers' HTTP clients (shutdown)."""
        await self.drain()
        for provider in self._providers.values():
            await provider.aclose()

    async def drain(self) -> None:
        """Wait for the answers being written to the cache (they are written after ``chat``
        returns)."""
        while self._puts:
            await asyncio.gather(*list(self._puts), return_exceptions=True)

    # -- the call --------------------------------------------------------------------------

    async def chat(
        self,
        tenant: str,
        request: ChatRequest,
        *,
        job_id: str | None = None,
        attempt: int = 1,
        call_index: int = 0,
        workflow: str | None = None,
        on_token: Callable[[str], None] | None = None,
    ) -> ChatResult:
        """Answer ``request`` for ``tenant``; see the module docstring for the steps. Raises
        :class:`LlmRefused` (budget, guardrail, validation: do not retry) or
        :class:`ProvidersUnavailable` (no provider answered: retry later)."""
        if not request.messages:
            raise ValidationError("a chat request needs at least one message")
        digest = request_hash(request)
        if job_id is not None:
            recorded = await self._store.find_llm_call(tenant, job_id, call_index)
            if recorded is not None and recorded.request_hash == digest:
                self._observe(
                    CallObservation(tenant, recorded.provider, recorded.model, "replayed")
                )
                return ChatResult.from_json(recorded.response, replayed=True)
        run = _Attempt(tenant, request, on_token)
        run.request = replace(request, messages=self._guard_inputs(run))
        route = await self._route(tenant, run.request)
        plan = self._cache_plan(run.request)
        if plan is not None:
            hit = await self._cached(tenant, plan)
            if hit is not None:
                found = ChatResult.from_json(
                    dict(hit.value),
                    cached=True,
                    cache_match="exact" if hit.exact else "semantic",
                    cache_similarity=round(float(hit.similarity), 4),
                )
                self._observe(CallObservation(tenant, found.provider, found.model, "cached"))
                return replace(found, guardrails=_verdicts(run.verdicts))
        scopes = BudgetScopes(tenant, workflow)
        reserved = self._estimate(route, run.request)
        outcome = await self._store.reserve_llm_budget(
            ReserveParams(scopes, reserved, self._clock.now())
        )
        if not outcome.reserved:
            reserved = 0.0
            route = self._downgrade(route, outcome.exhausted, run)
        try:
            result = await self._run_tiers(run, route)
        except BaseException:
            if run.spend.cost != reserved:  # what was paid, even for a refused answer
                settle = SettleParams(scopes, run.spend.cost - reserved, self._clock.now())
                await self._store.settle_llm_budget(settle)
            raise
        delta = run.spend.cost - reserved
        await self._store.record_llm_call(
            CallRecord(
                id=new_id(),
                tenant=tenant,
                job_id=job_id,
                attempt=attempt,
                call_index=call_index,
                request_hash=digest,
                provider=result.provider,
                model=result.model,
                response=result.to_json(),
                tokens_in=result.tokens_in,
                tokens_out=result.tokens_out,
                cost=result.cost,
                latency_ms=round(run.spend.latency_s * 1000, 3),
                workflow=workflow,
                created_at=self._clock.now(),
            ),
            SettleParams(scopes, delta, self._clock.now()) if delta != 0 else None,
        )
        if plan is not None:  # in the background: the answer does not wait for the cache
            task = asyncio.get_running_loop().create_task(
                self._remember(tenant, plan, result.to_json())
            )
            self._puts.add(task)
            task.add_done_callback(self._puts.discard)
        return result

    def _cache_plan(self, request: ChatRequest) -> _CachePlan | None:
        if (
            self._cache is None
            or not request.cache
            or request.tools
            or request.temperature not in (None, 0)
        ):
            return None
        semantic = None
        if request.cache_semantic is not None:
            scope = semantic_scope(request)
            if scope is not None and len(scope[1]) <= MAX_SEMANTIC_TEXT:
                semantic = (SEMANTIC_PREFIX + scope[0][:40], scope[1])
        threshold = None if request.cache_semantic is None else request.cache_semantic.threshold
        return _CachePlan(cache_digest(request), semantic, threshold, request.cache_ttl_s)

    async def _cached(self, tenant: str, plan: _CachePlan) -> Any:
        """A cache hit (the exact key first, then a similar text when opted in), or None; a
        failing cache is a miss (it only saves money)."""
        assert self._cache is not None
        try:
            hit = await self._cache.get(tenant, EXACT_NAMESPACE, plan.digest, semantic=False)
            if hit is None and plan.semantic is not None:
                namespace, text = plan.semantic
                hit = await self._cache.get(tenant, namespace, text, threshold=plan.threshold)
        except Exception as exc:
            log.warning("llm cache lookup failed", tenant=tenant, error=str(exc))
            return None
        return hit

    async def _remember(self, tenant: str, plan: _CachePlan, value: dict[str, Any]) -> None:
        assert self._cache is not None
        try:
            await self._cache.put(
                tenant, EXACT_NAMESPACE, plan.digest, value, plan.ttl_s, semantic=False
            )
            if plan.semantic is not None:
                namespace, text = plan.semantic
                await self._cache.put(tenant, namespace, text, value, plan.ttl_s)
        except Exception as exc:  # the answer stands; only the next lookup misses
            log.warning("llm cache put failed", tenant=tenant, error=str(exc))

    async def quote(self, tenant: str, request: ChatRequest) -> Quote:
        """The estimated cost of ``request`` before calling (see :class:`Quote`); an agent
        uses it to keep within its ``max_cost``."""
        route = await self._route(tenant, request)
        provider, model = split_model(route.tiers[route.start].model)
        price = route.providers[str(provider)].price(model)
        chars = prompt_chars(request)
        if request.tools:
            chars += len(
                orjson.dumps([[t.name, t.description, t.parameters] for t in request.tools])
            )
        return Quote(f"{provider}/{model}", price.cost(estimate_tokens(chars), 0), price.cost(0, 1))

    async def configured(self, tenant: str) -> bool:
        """Does the tenant have any provider?"""
        return bool(await self._store.list_llm_providers(tenant))

    # -- guardrails ------------------------------------------------------------------------

    def _guard_inputs(self, run: _Attempt) -> tuple[Message, ...]:
        cfg = self.config
        messages = run.request.messages
        if cfg.injection_action != "off":
            text = "\n".join(m.content or "" for m in messages if m.role in {"user", "tool"})
            score, reasons = self._classify(text)
            if score >= cfg.injection_threshold:
                action = "blocked" if cfg.injection_action == "block" else "flagged"
                self._verdict(run, Verdict("injection", action, ", ".join(reasons), score))
                if action == "blocked":
                    raise GuardrailBlocked(
                        f"blocked by the prompt-injection guardrail ({', '.join(reasons)}; "
                        f"score {score:.2f} >= {cfg.injection_threshold:g})",
                        _verdicts(run.verdicts),
                    )
            else:
                self._verdict(run, Verdict("injection", "pass", score=score))
        if cfg.pii_action == "off":
            return messages
        counts: dict[str, int] = {}
        redacted: list[Message] = []
        for m in messages:
            if m.content:
                text, found = self._pii.redact(m.content)
                for kind, n in found.items():
                    counts[kind] = counts.get(kind, 0) + n
                m = replace(m, content=text)  # noqa: PLW2901 - the redacted copy
            redacted.append(m)
        if not counts:
            self._verdict(run, Verdict("pii", "pass"))
            return messages
        if cfg.pii_action == "block":
            self._verdict(run, Verdict("pii", "blocked", findings=counts))
            kinds = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
            raise GuardrailBlocked(
                f"blocked by the PII guardrail: the prompt holds {kinds}", _verdicts(run.verdicts)
            )
        self._verdict(run, Verdict("pii", "redacted", findings=counts))
        return tuple(redacted)

    def _classify(self, text: str) -> tuple[float, list[str]]:
        """The classifier's (score, reasons); a classifier that fails or answers nonsense
        refuses the call (fail closed: it is a guardrail)."""
        try:
            score, reasons = self._classifier(text)
            return float(score), [str(r) for r in reasons]
        except Exception as exc:
            raise GuardrailBlocked(
                f"the prompt-injection classifier failed: {type(exc).__name__}: {exc}"[:300]
            ) from None

    def _check_output(self, request: ChatRequest, reply: ProviderReply) -> tuple[str | None, Any]:
        """(why the answer is unacceptable or None, the parsed output)."""
        text = reply.content or ""
        if len(text) > self.config.max_output_chars:
            return f"the answer is longer than {self.config.max_output_chars} characters", None
        if request.response_schema is None or reply.tool_calls:
            return None, None
        try:
            value = extract_json(text)
        except ValueError:
            return "the answer is not JSON", None
        errors = schema_errors(request.response_schema, value)
        if errors:
            return "the answer does not match response_schema: " + "; ".join(errors), None
        return None, value

    def _verdict(self, run: _Attempt, verdict: Verdict) -> None:
        run.verdicts.append(verdict)
        if self._observer is not None:
            self._observer.llm_guardrail(verdict.name, verdict.action)

    # -- routing ---------------------------------------------------------------------------

    async def _route(self, tenant: str, request: ChatRequest) -> _Route:
        _, providers, policies = await self._tenant_config(tenant)
        if not providers:
            raise NoProvider(
                "no LLM provider is configured for this tenant (PUT /v1/llm/providers/{name})"
            )
        tiers: tuple[Tier, ...]
        if request.model is not None:
            tiers = (Tier(qualify(request.model, providers)),)
        else:
            name = request.policy or DEFAULT_POLICY
            if name not in policies:
                policies[name] = await self._store.get_llm_policy(tenant, name)
            policy = policies[name]
            if policy is None and request.policy is not None:
                raise LlmRefused(f"unknown routing policy {request.policy!r}")
            if policy is None:
                tiers = (Tier(first_model(providers)),)
            else:
                tiers = tuple(
                    Tier(
                        qualify(t.model, providers),
                        tuple(qualify(f, providers) for f in t.fallbacks),
                        t.max_prompt_chars,
                    )
                    for t in policy.tiers
                )
        size = prompt_chars(request)
        start = next(
            (
                i
                for i, t in enumerate(tiers)
                if t.max_prompt_chars is None or size <= t.max_prompt_chars
            ),
            len(tiers) - 1,
        )
        return _Route(tiers, start, providers)

    async def _tenant_config(
        self, tenant: str
    ) -> tuple[float, dict[str, ProviderConfig], dict[str, RoutingPolicy | None]]:
        """The tenant's providers (and the policies read so far), reused for
        ``config_cache_s``: changes made through another server show within that time."""
        now = time.monotonic()
        found = self._configs.get(tenant)
        if found is None or found[0] <= now:
            providers = {p.name: p for p in await self._store.list_llm_providers(tenant)}
            found = self._configs[tenant] = (now + self.config.config_cache_s, providers, {})
        return found

    def _forget(self, tenant: str) -> None:
        self._configs.pop(tenant, None)

    def _estimate(self, route: _Route, request: ChatRequest) -> float:
        provider, model = split_model(route.tiers[route.start].model)
        config = route.providers[str(provider)]
        out = request.max_tokens or self.config.default_output_tokens
        return config.price(model).cost(estimate_tokens(prompt_chars(request)), out)

    def _downgrade(self, route: _Route, exhausted: Sequence[Budget], run: _Attempt) -> _Route:
        refusing = [b for b in exhausted if b.on_exhausted != "downgrade" or not b.downgrade_model]
        if refusing:
            b = refusing[0]
            what = "the tenant's" if b.scope == "tenant" else f"workflow {b.name!r}'s"
            period = "in total" if b.period == "total" else f"this {b.period}"
            verdict = Verdict("budget", "blocked", f"{b.scope}:{b.name}")
            self._verdict(run, verdict)
            raise BudgetExhausted(
                f"{what} LLM budget is exhausted: ${b.spent_usd:.4f} of ${b.limit_usd:.4f} "
                f"spent {period}",
                _verdicts(run.verdicts),
            )
        target = str(exhausted[0].downgrade_model)
        model = qualify(target, route.providers)
        self._verdict(run, Verdict("budget", "downgraded", f"to {model}"))
        return _Route((Tier(model),), 0, route.providers)

    # -- calling ---------------------------------------------------------------------------

    async def _run_tiers(self, run: _Attempt, route: _Route) -> ChatResult:
        request = run.request
        problem = ""
        tries = 0
        for index in range(route.start, len(route.tiers)):
            tier = route.tiers[index]
            messages = with_schema_hint(request)
            for ask in range(self.config.max_reasks + 1):
                reply, target = await self._call_tier(
                    run, replace(request, messages=messages), tier, route
                )
                tries += 1
                found, output = self._check_output(request, reply)
                if found is None:
                    provider, model = split_model(target)
                    self._verdict(run, Verdict("output", "pass"))
                    return ChatResult(
                        content=reply.content,
                        tool_calls=reply.tool_calls,
                        model=model,
                        provider=str(provider),
                        tokens_in=run.spend.tokens_in,
                        tokens_out=run.spend.tokens_out,
                        cost=round(run.spend.cost, 10),
                        output=output,
                        guardrails=_verdicts(run.verdicts),
                    )
                problem = found
                self._verdict(run, Verdict("output", "rejected", f"{target}: {found}"))
                if request.response_schema is None or ask == self.config.max_reasks:
                    if index + 1 < len(route.tiers):
                        run.mark(f"rejected ({found}); escalated to {route.tiers[index + 1].model}")
                    else:
                        run.mark(f"rejected ({found})")
                    break
                run.mark(f"re-ask ({found})")
                messages = (
                    *messages,
                    Message("assistant", reply.content or ""),
                    Message(
                        "user",
                        f"That answer was rejected: {found}. Answer again with only a JSON "
                        "value that matches the schema.",
                    ),
                )
            if index + 1 < len(route.tiers):
                nxt = route.tiers[index + 1].model
                self._verdict(run, Verdict("routing", "escalated", f"to {nxt}: {problem}"))
        raise LlmRefused(
            f"the answer failed validation after {tries} tries: {problem}", _verdicts(run.verdicts)
        )

    async def _call_tier(
        self, run: _Attempt, request: ChatRequest, tier: Tier, route: _Route
    ) -> tuple[ProviderReply, str]:
        errors: list[str] = []
        cfg = self.config
        for target in (tier.model, *tier.fallbacks):
            pname, model = split_model(target)
            config = route.providers[str(pname)]
            breaker = self._breakers.setdefault((run.tenant, config.name), ProviderBreaker())
            if not breaker.allows(time.monotonic()):
                errors.append(f"{target}: circuit open after repeated failures")
                continue
            provider = self._providers.get(config.kind)
            if provider is None:
                errors.append(f"{target}: no adapter for provider kind {config.kind!r}")
                continue
            try:
                api_key = await self._api_key(run.tenant, config)
            except BaseException:
                breaker.released()  # a probe that never reached the provider
                raise
            call = ProviderCall(config, model, request, api_key, stream=run.on_token is not None)
            on_token = run.token if run.on_token is not None else None
            for retry in range(config.max_retries + 1):
                started = time.perf_counter()
                try:
                    reply = await provider.complete(call, on_token)
                except ProviderError as exc:
                    took = time.perf_counter() - started
                    self._observe(
                        CallObservation(run.tenant, config.name, model, "error", latency_s=took)
                    )
                    wait = exc.retry_after
                    if wait is None:
                        wait = cfg.backoff_s * 2**retry
                    if (
                        exc.retryable
                        and retry < config.max_retries
                        and wait <= cfg.max_retry_after_s
                    ):
                        run.mark(f"attempt failed ({exc.message}); retrying {target}")
                        await self._sleep(wait)
                        continue
                    errors.append(f"{target}: {exc.message}")
                    breaker.failed(time.monotonic(), cfg.breaker_failures, cfg.breaker_reset_s)
                    run.mark(f"attempt failed ({exc.message}); {target} given up")
                    break
                except BaseException:  # cancelled, or not the provider's failure
                    breaker.released()
                    raise
                breaker.succeeded()
                self._paid(run, config, model, reply, time.perf_counter() - started)
                return reply, target
        raise ProvidersUnavailable("no LLM provider answered: " + "; ".join(errors))

    def _paid(
        self, run: _Attempt, config: ProviderConfig, model: str, reply: ProviderReply, took: float
    ) -> None:
        """Count an answered provider call: tokens, cost and latency, on the attempt and in
        the metrics."""
        cost = config.price(model).cost(reply.tokens_in, reply.tokens_out)
        spend = run.spend
        spend.tokens_in += reply.tokens_in
        spend.tokens_out += reply.tokens_out
        spend.cost += cost
        spend.calls += 1
        spend.latency_s += took
        self._observe(
            CallObservation(
                run.tenant,
                config.name,
                model,
                "ok",
                reply.tokens_in,
                reply.tokens_out,
                cost,
                took,
            )
        )

    async def _api_key(self, tenant: str, config: ProviderConfig) -> str | None:
        if config.api_key_secret is None:
            return None
        if self._secrets is None:
            raise LlmRefused(
                f"provider {config.name!r} needs secret {config.api_key_secret!r} but secrets "
                "are not available (set FAENA_SECRET_KEY)"
            )
        try:
            return await self._secrets.resolve(
                tenant, config.api_key_secret, purpose=f"llm provider {config.name}"
            )
        except (NotFound, ValidationError) as exc:  # unknown secret, secrets unavailable
            raise LlmRefused(f"provider {config.name!r}: {exc.message}") from None

    def _observe(self, call: CallObservation) -> None:
        if self._observer is not None:
            self._observer.llm_call(call)

    # -- configuration (the API and CLI) ---------------------------------------------------

    async def put_provider(self, config: ProviderConfig) -> ProviderConfig:
        await self._store.put_llm_provider(config)
        self._forget(config.tenant)
        found = await self._store.get_llm_provider(config.tenant, config.name)
        assert found is not None
        return found

    async def list_providers(self, tenant: str) -> list[ProviderConfig]:
        return await self._store.list_llm_providers(tenant)

    async def get_provider(self, tenant: str, name: str) -> ProviderConfig:
        found = await self._store.get_llm_provider(tenant, name)
        if found is None:
            raise NotFound(f"LLM provider {name!r} not found")
        return found

    async def delete_provider(self, tenant: str, name: str) -> None:
        self._forget(tenant)
        if not await self._store.delete_llm_provider(tenant, name):
            raise NotFound(f"LLM provider {name!r} not found")

    async def put_policy(self, policy: RoutingPolicy) -> RoutingPolicy:
        await self._store.put_llm_policy(policy)
        self._forget(policy.tenant)
        return policy

    async def list_policies(self, tenant: str) -> list[RoutingPolicy]:
        return await self._store.list_llm_policies(tenant)

    async def get_policy(self, tenant: str, name: str) -> RoutingPolicy:
        found = await self._store.get_llm_policy(tenant, name)
        if found is None:
            raise NotFound(f"routing policy {name!r} not found")
        return found

    async def delete_policy(self, tenant: str, name: str) -> None:
        self._forget(tenant)
        if not await self._store.delete_llm_policy(tenant, name):
            raise NotFound(f"routing policy {name!r} not found")

    async def put_budgets(self, budgets: Sequence[Budget]) -> list[Budget]:
        return [await self._store.put_llm_budget(b) for b in budgets]

    async def list_budgets(self, tenant: str) -> list[Budget]:
        return await self._store.list_llm_budgets(tenant)

    async def delete_budget(self, tenant: str, scope: str, name: str) -> None:
        if not await self._store.delete_llm_budget(tenant, scope, name):
            raise NotFound(f"LLM budget {scope}:{name} not found")

    async def usage(
        self, tenant: str, *, since: float = 0.0, group_by: str = "model"
    ) -> list[UsageRow]:
        if group_by not in USAGE_GROUPS:
            raise ValidationError(f"group_by must be one of {', '.join(sorted(USAGE_GROUPS))}")
        return await self._store.llm_usage(UsageParams(tenant, since, group_by))

    async def calls(self, tenant: str, job_id: str) -> list[CallRecord]:
        return await self._store.list_llm_calls(tenant, job_id)


def _verdicts(verdicts: Sequence[Verdict]) -> tuple[dict[str, Any], ...]:
    return tuple(v.to_json() for v in verdicts)
