"""The ``agno`` kind (issue 8, ``faena[agno]``): an Agno agent run as one job, in the server's
local pool.

faena supplies what Agno does not know: the model's endpoint and API key (the tenant's LLM
provider and secret, resolved here, never read from the payload), the tools (faena kinds and
``@faena.task`` functions, each call a child job with ``parent_id`` = this job and the
idempotency key ``agno:<job id>:<n>:<digest of tool and arguments>``, so a retry reuses the
children of identical calls), the tenant's and workflow's LLM budgets (checked before every
model call) and the cost record of each call (``GET /v1/llm/calls?job_id=``, usage, budgets).

What Agno does itself: the conversation, tool-call parsing and dispatch, structured output.
Its model calls do not pass through the ``llm`` kind's routing, guardrails, cache or replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from faena.domain.agents import tool_name
from faena.domain.agno import INSTALL_HINT, AgnoSpec, parse_agno_payload
from faena.domain.errors import FaenaError, NotFound, ValidationError
from faena.domain.guardrails import extract_json, schema_errors
from faena.domain.ids import new_id
from faena.domain.jobs import Job
from faena.domain.llm import (
    Budget,
    CallRecord,
    ChatResult,
    LlmRefused,
    NoProvider,
    ProviderConfig,
    split_model,
)
from faena.domain.logs import LogStream
from faena.ports.clock import Clock, SystemClock
from faena.ports.executor import ExecutionSink
from faena.ports.llm import BudgetScopes, LlmStore, ReserveParams, SecretResolver, SettleParams
from faena.services.agents import AgentOutcome
from faena.services.llm_kind import _TokenBuffer
from faena.services.llm_routing import qualify
from faena.services.orchestrator import JobRequest, Orchestrator

if TYPE_CHECKING:
    from faena.adapters.agno_agent import AgnoTool, Endpoint, ModelCall

MAX_TOOL_RESULT = 16_000  # characters of a tool's result shown to the model
RETRYABLE_ERRORS = frozenset({"model_provider_error", "model_rate_limit_error"})
KindDescriber = Callable[[str], "tuple[str, dict[str, Any]] | None"]
WorkflowOf = Callable[[str, str], Awaitable[str | None]]


@dataclass(slots=True)
class _Run:
    """One attempt: the RunHooks of the Agno run, and what it has spent and called."""

    runner: AgnoKind
    job: Job
    spec: AgnoSpec
    sink: ExecutionSink
    config: ProviderConfig
    model: str
    scopes: BudgetScopes
    first_index: int  # call_index of this attempt's first model call
    buffer: _TokenBuffer | None
    steps: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    calls: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: int = 0

    async def before_model_call(self) -> str | None:
        if self.steps >= self.spec.max_steps:
            return f"max_steps ({self.spec.max_steps}) reached without an answer"
        refused = await self.runner.budget_refusal(self.scopes)
        if refused is not None:
            return refused
        self.steps += 1
        return None

    async def after_model_call(self, call: ModelCall) -> None:
        cost = round(self.config.price(self.model).cost(call.tokens_in, call.tokens_out), 10)
        self.tokens_in += call.tokens_in
        self.tokens_out += call.tokens_out
        self.cost += cost
        await self.runner.record_call(self, call, cost)

    def text(self, delta: str) -> None:
        if self.buffer is not None:
            self.buffer(delta)

    async def call_tool(self, kind: str, arguments: dict[str, Any]) -> str:
        """Run one tool call as a child job; its result (or error) as the model's next text."""
        n = self.tool_calls
        self.tool_calls += 1
        record: dict[str, Any] = {"tool": tool_name(kind), "arguments": arguments}
        self.calls.append(record)
        digest = hashlib.sha256(orjson.dumps([kind, arguments], default=str)).hexdigest()[:16]
        orchestrator = self.runner.orchestrator
        request = JobRequest(
            kind=kind,
            payload=arguments,
            queue=self.spec.tool_queue,
            timeout_s=self.spec.tool_timeout_s,
            idempotency_key=f"agno:{self.job.id}:{n}:{digest}",
            parent_id=self.job.id,
        )
        try:
            (submitted,) = await orchestrator.submit(self.job.tenant, [request])
        except FaenaError as e:
            record["error"] = e.message
            return _text({"error": e.message})
        child = submitted.job
        record["job_id"] = child.id
        verb = "runs" if submitted.created else "reuses"
        self.sink.log(LogStream.SYSTEM, f"tool {n}: {record['tool']} {verb} job {child.id}\n")
        # A little beyond the child's own timeout: its failure, not our wait, should end it.
        child = await orchestrator.wait(self.job.tenant, child.id, self.spec.tool_timeout_s + 5)
        record["state"] = child.state.value
        if not child.is_terminal:
            with contextlib.suppress(FaenaError):
                await orchestrator.cancel(self.job.tenant, child.id)
            record["error"] = "tool timed out"
            return _text({"error": record["error"]})
        if child.state.value != "succeeded":
            record["error"] = child.error or child.state.value
            return _text({"error": record["error"]})
        return _text(child.result)

    def result(self, answer: Any, output: Any = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "content": answer,
            "model": f"{self.config.name}/{self.model}",
            "steps": self.steps,
            "usage": {
                "tokens_in": self.tokens_in,
                "tokens_out": self.tokens_out,
                "cost_usd": round(self.cost, 10),
            },
            "tool_calls": self.calls,
        }
        if output is not None:
            doc["output"] = output
        return doc


class AgnoKind:
    """The :class:`~faena.ports.executor.KindHandler` of ``agno``. ``secrets()`` is the tenant
    secret service (looked up per run: it may be built after this); ``workflow_of(tenant,
    run_id)`` names a step's workflow, for workflow budgets."""

    def __init__(
        self,
        orchestrator: Orchestrator,
        store: LlmStore,
        secrets: Callable[[], SecretResolver | None],
        describe_kind: KindDescriber,
        *,
        workflow_of: WorkflowOf | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.orchestrator = orchestrator
        self.store = store
        self._secrets = secrets
        self.describe_kind = describe_kind
        self._workflow_of = workflow_of
        self.clock = clock or SystemClock()

    def validate(self, payload: Any) -> None:
        parse_agno_payload(payload)

    async def aclose(self) -> None:
        return None

    async def run(self, job: Job, sink: ExecutionSink) -> AgentOutcome:
        spec = parse_agno_payload(job.payload)
        try:
            from faena.adapters.agno_agent import run_agent
        except ImportError as e:  # the extra was removed after the server started
            return AgentOutcome(False, error=f"{INSTALL_HINT} ({e})")
        try:
            config, model, endpoint = await self._endpoint(job.tenant, spec.model)
            scopes = BudgetScopes(job.tenant, await self._workflow(job))
            refused = await self.budget_refusal(scopes)
            if refused is not None:
                return AgentOutcome(False, error=refused)
            earlier = await self.store.list_llm_calls(job.tenant, job.id)
            first = max((c.call_index for c in earlier), default=-1) + 1
        except FaenaError as e:
            return AgentOutcome(False, error=e.message)
        buffer = _TokenBuffer(sink) if spec.stream else None
        run = _Run(self, job, spec, sink, config, model, scopes, first, buffer)
        try:
            tools = self._tools(run)
            async with asyncio.timeout(spec.timeout_s):
                report = await run_agent(
                    endpoint,
                    instructions=spec.instructions,
                    text=spec.input,
                    tools=tools,
                    hooks=run,
                    temperature=spec.temperature,
                    response_schema=spec.response_schema,
                )
        except TimeoutError:
            return self._stopped(run, f"timeout_s ({spec.timeout_s:g} s) reached")
        except FaenaError as e:
            return AgentOutcome(False, result=run.result(None), error=e.message)
        finally:
            if buffer is not None:
                buffer.flush()
        if report.stopped is not None:
            return self._stopped(run, report.stopped)
        if report.error is not None:
            kind = report.error_type or "error"
            sink.log(LogStream.SYSTEM, f"agno run failed ({kind}): {report.error}\n")
            return AgentOutcome(
                False,
                result=run.result(None),
                error=f"agno run failed ({kind}) calling {config.name}/{model}: {report.error}",
                retryable=kind in RETRYABLE_ERRORS,
            )
        return self._answer(run, report.content)

    def _answer(self, run: _Run, content: Any) -> AgentOutcome:
        schema = run.spec.response_schema
        text = content if isinstance(content, str) or content is None else _text(content)
        if schema is None:
            run.sink.log(LogStream.SYSTEM, f"agno answered after {run.steps} model calls\n")
            return AgentOutcome(True, result=run.result(text))
        try:
            value = extract_json(content) if isinstance(content, str) else content
        except ValueError:
            return AgentOutcome(False, result=run.result(text), error="the agno answer is not JSON")
        errors = schema_errors(schema, value)
        if errors:
            return AgentOutcome(
                False,
                result=run.result(text),
                error="the agno answer does not match response_schema: " + "; ".join(errors),
            )
        return AgentOutcome(True, result=run.result(text, value))

    def _stopped(self, run: _Run, reason: str) -> AgentOutcome:
        run.sink.log(LogStream.SYSTEM, f"agno agent stopped: {reason}\n")
        return AgentOutcome(False, result=run.result(None), error=f"agno agent stopped: {reason}")

    def _tools(self, run: _Run) -> list[AgnoTool]:
        from faena.adapters.agno_agent import AgnoTool

        known = self.orchestrator.catalog.kinds()
        tools: list[AgnoTool] = []
        for tool in run.spec.tools:
            if tool.kind not in known:
                raise ValidationError(f"agno tool {tool.kind!r} is not a kind any worker serves")
            described = self.describe_kind(tool.kind)
            description = tool.description or (described[0] if described else "")
            parameters = dict(tool.parameters or (described[1] if described else {}))
            parameters.setdefault("type", "object")
            parameters.setdefault("properties", {})

            async def call(arguments: dict[str, Any], kind: str = tool.kind) -> str:
                return await run.call_tool(kind, arguments)

            tools.append(
                AgnoTool(
                    tool_name(tool.kind),
                    description or f"Runs the faena kind {tool.kind!r}.",
                    parameters,
                    call,
                )
            )
        return tools

    async def _endpoint(self, tenant: str, model: str) -> tuple[ProviderConfig, str, Endpoint]:
        """The tenant's provider of ``model``, the model's name there, and where to call it
        with which key."""
        from faena.adapters.agno_agent import Endpoint

        providers = {p.name: p for p in await self.store.list_llm_providers(tenant)}
        if not providers:
            raise NoProvider(
                "no LLM provider is configured for this tenant (PUT /v1/llm/providers/{name})"
            )
        provider, name = split_model(qualify(model, providers))
        config = providers[str(provider)]
        if config.kind not in {"openai", "anthropic"}:
            raise LlmRefused(f"the agno kind cannot drive a provider of kind {config.kind!r}")
        key = await self._api_key(tenant, config)
        endpoint = Endpoint(
            config.kind, name, config.base_url, key, config.timeout_s, config.max_retries
        )
        return config, name, endpoint

    async def _api_key(self, tenant: str, config: ProviderConfig) -> str | None:
        if config.api_key_secret is None:
            return None
        secrets = self._secrets()
        if secrets is None:
            raise LlmRefused(
                f"provider {config.name!r} needs secret {config.api_key_secret!r} but secrets "
                "are not available (set FAENA_SECRET_KEY)"
            )
        try:
            return await secrets.resolve(
                tenant, config.api_key_secret, purpose=f"llm provider {config.name} (agno)"
            )
        except (NotFound, ValidationError) as e:
            raise LlmRefused(f"provider {config.name!r}: {e.message}") from None

    async def budget_refusal(self, scopes: BudgetScopes) -> str | None:
        """Why no model call may be made (a budget of ``scopes`` is spent), or None. Reserves
        nothing: a call's real cost is added when it is recorded."""
        outcome = await self.store.reserve_llm_budget(ReserveParams(scopes, 0.0, self.clock.now()))
        if outcome.reserved:
            return None
        return _exhausted(outcome.exhausted[0])

    async def record_call(self, run: _Run, call: ModelCall, cost: float) -> None:
        index = run.first_index + run.steps - 1
        now = self.clock.now()
        response = ChatResult(
            content=call.content or None,
            tool_calls=(),
            model=run.model,
            provider=run.config.name,
            tokens_in=call.tokens_in,
            tokens_out=call.tokens_out,
            cost=cost,
        )
        digest = hashlib.sha256(f"agno:{run.job.id}:{run.job.attempts}:{index}".encode())
        await self.store.record_llm_call(
            CallRecord(
                id=new_id(),
                tenant=run.job.tenant,
                job_id=run.job.id,
                attempt=run.job.attempts,
                call_index=index,
                request_hash=digest.hexdigest(),
                provider=run.config.name,
                model=run.model,
                response=response.to_json(),
                tokens_in=call.tokens_in,
                tokens_out=call.tokens_out,
                cost=cost,
                latency_ms=round(call.latency_s * 1000, 3),
                workflow=run.scopes.workflow,
                created_at=now,
            ),
            SettleParams(run.scopes, cost, now) if cost else None,
        )

    async def _workflow(self, job: Job) -> str | None:
        key = job.idempotency_key or ""
        if self._workflow_of is None or not key.startswith("wf:"):
            return None
        return await self._workflow_of(job.tenant, key.split(":", 2)[1])


def _exhausted(b: Budget) -> str:
    what = "the tenant's" if b.scope == "tenant" else f"workflow {b.name!r}'s"
    period = "in total" if b.period == "total" else f"this {b.period}"
    return (
        f"{what} LLM budget is exhausted: ${b.spent_usd:.4f} of ${b.limit_usd:.4f} spent {period}"
    )


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    if len(text) > MAX_TOOL_RESULT:
        text = text[: MAX_TOOL_RESULT - 1] + "…"
    return text
