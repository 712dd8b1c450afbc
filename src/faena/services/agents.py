"""The ``agent`` kind: a tool-calling loop over the LLM service.

Each step asks the model (``call_index`` = the step, so a retried job replays the calls it
already paid for); each tool call it makes becomes a child job of the tool's kind, submitted
with the idempotency key ``agent:<job id>:<step>:<n>`` — a retry finds the children that already
ran instead of running them again — or a call on an MCP server. The loop ends when the model
answers without tool calls, or fails (not retryable) when ``max_steps``, ``max_cost`` or
``time_limit_s`` is reached.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import orjson

from faena.domain.agents import (
    KIND,
    AgentSpec,
    mcp_tool_name,
    parse_agent_payload,
    tool_name,
)
from faena.domain.errors import FaenaError, Unavailable
from faena.domain.jobs import Job
from faena.domain.llm import ChatRequest, ChatResult, Message, Quote, ToolCall, ToolSpec
from faena.domain.logs import LogStream
from faena.ports.executor import ExecutionSink
from faena.ports.mcp import McpConnector, McpSession
from faena.services.orchestrator import JobRequest, Orchestrator

MAX_TOOL_RESULT = 16_000  # characters of a tool's result shown to the model
MIN_ANSWER_TOKENS = 16  # under max_cost, a call that could not afford this many is not made
KindDescriber = Callable[[str], "tuple[str, dict[str, Any]] | None"]


class ChatService(Protocol):
    async def chat(
        self,
        tenant: str,
        request: ChatRequest,
        *,
        job_id: str | None = None,
        attempt: int = 1,
        call_index: int = 0,
        workflow: str | None = None,
    ) -> ChatResult: ...

    async def quote(self, tenant: str, request: ChatRequest) -> Quote: ...


@dataclass(frozen=True, slots=True)
class AgentOutcome:
    succeeded: bool
    result: Any = None
    error: str | None = None
    retryable: bool = False


@dataclass(slots=True)
class _Tool:
    spec: ToolSpec
    kind: str | None = None  # a faena kind: a child job
    session: McpSession | None = None  # an MCP tool: a call on this session
    mcp_name: str = ""
    server: str = ""


@dataclass(slots=True)
class _Run:
    job: Job
    spec: AgentSpec
    sink: ExecutionSink
    tools: dict[str, _Tool] = field(default_factory=dict)
    cost: float = 0.0
    calls: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0


class AgentRunner:
    def __init__(
        self,
        orchestrator: Orchestrator,
        llm: Callable[[], ChatService | None],
        connector: McpConnector | None,
        describe_kind: KindDescriber,
    ) -> None:
        self.orchestrator = orchestrator
        self._llm = llm  # looked up per run: the LLM layer may be configured after us
        self.connector = connector
        self.describe_kind = describe_kind

    def validate(self, payload: Any) -> None:
        parse_agent_payload(payload)

    async def run(self, job: Job, sink: ExecutionSink) -> AgentOutcome:
        spec = parse_agent_payload(job.payload)
        llm = self._llm()
        if llm is None:
            return AgentOutcome(False, error="the agent kind needs the LLM layer configured")
        run = _Run(job, spec, sink)
        try:
            async with asyncio.timeout(spec.time_limit_s), AsyncExitStack() as stack:
                await self._tools(run, stack)
                return await self._loop(run, llm)
        except TimeoutError:
            return self._stopped(run, f"time_limit_s ({spec.time_limit_s:g} s) reached")
        except FaenaError as e:  # providers down: worth another attempt; anything else is not
            return AgentOutcome(
                False,
                result=self._result(run, None),
                error=e.message,
                retryable=isinstance(e, Unavailable),
            )

    async def _tools(self, run: _Run, stack: AsyncExitStack) -> None:
        known = self.orchestrator.catalog.kinds()
        for tool in run.spec.tools:
            if tool.kind not in known:
                raise FaenaError(f"agent tool {tool.kind!r} is not a kind any worker serves")
            described = self.describe_kind(tool.kind)
            description = tool.description or (described[0] if described else "")
            parameters = dict(tool.parameters or (described[1] if described else {}))
            parameters.setdefault("type", "object")
            name = tool_name(tool.kind)
            description = description or f"Runs the faena kind {tool.kind!r}."
            run.tools[name] = _Tool(ToolSpec(name, description, parameters), kind=tool.kind)
        for server in run.spec.mcp:
            if self.connector is None:
                raise FaenaError("MCP tools need the ai extra (the mcp package)")
            try:
                session = await stack.enter_async_context(self.connector.connect(server))
                listed = await session.list_tools()
            except FaenaError:
                raise
            except Exception as e:
                raise FaenaError(f"MCP server {server.name!r}: {_describe(e)}") from None
            for mcp_tool in listed:
                if server.tools is not None and mcp_tool.name not in server.tools:
                    continue
                name = mcp_tool_name(server.name, mcp_tool.name)
                spec = ToolSpec(name, mcp_tool.description, mcp_tool.parameters)
                run.tools[name] = _Tool(
                    spec, session=session, mcp_name=mcp_tool.name, server=server.name
                )
            run.sink.log(LogStream.SYSTEM, f"mcp {server.name}: {len(listed)} tools\n")

    async def _loop(self, run: _Run, llm: ChatService) -> AgentOutcome:
        spec = run.spec
        messages: list[Message] = []
        if spec.system:
            messages.append(Message("system", spec.system))
        messages.append(Message("user", spec.prompt))
        specs = tuple(t.spec for t in run.tools.values())
        for step in range(spec.max_steps):
            request = ChatRequest(
                messages=tuple(messages),
                model=spec.model,
                policy=spec.policy,
                temperature=spec.temperature,
                tools=specs,
                cache=False,
            )
            if spec.max_cost is not None:
                capped = await self._within_cost(run, llm, request, spec.max_cost)
                if isinstance(capped, str):
                    return self._stopped(run, capped)
                request = capped
            run.steps = step + 1
            answer = await llm.chat(
                run.job.tenant,
                request,
                job_id=run.job.id,
                attempt=run.job.attempts,
                call_index=step,
            )
            run.cost += answer.cost
            messages.append(Message("assistant", answer.content, answer.tool_calls))
            if not answer.tool_calls:
                run.sink.log(LogStream.SYSTEM, f"agent answered after {step + 1} steps\n")
                return AgentOutcome(True, result=self._result(run, answer.content))
            outputs = await asyncio.gather(
                *(self._call(run, step, i, call) for i, call in enumerate(answer.tool_calls))
            )
            for call, output in zip(answer.tool_calls, outputs, strict=True):
                messages.append(Message("tool", output, tool_call_id=call.id))
        return self._stopped(run, f"max_steps ({spec.max_steps}) reached without an answer")

    async def _within_cost(
        self, run: _Run, llm: ChatService, request: ChatRequest, max_cost: float
    ) -> ChatRequest | str:
        """The request with ``max_tokens`` capped so its answer cannot take the spending past
        ``max_cost``, or why the call is not made (its prompt alone, or the prompt and
        ``MIN_ANSWER_TOKENS`` of answer, would pass it)."""
        left = max_cost - run.cost
        quote = await llm.quote(run.job.tenant, request)
        room = left - quote.prompt_usd
        if quote.per_output_token_usd <= 0:
            tokens = None if room >= 0 else 0
        else:
            tokens = int(room // quote.per_output_token_usd) if room > 0 else 0
        if tokens is not None and tokens < MIN_ANSWER_TOKENS:
            need = quote.prompt_usd + MIN_ANSWER_TOKENS * quote.per_output_token_usd
            return (
                f"max_cost ({max_cost:g}) reached: ${run.cost:.6f} spent, the next call "
                f"would cost about ${need:.6f} or more ({quote.model})"
            )
        if tokens is None:
            return request
        return replace(request, max_tokens=min(tokens, request.max_tokens or tokens))

    async def _call(self, run: _Run, step: int, index: int, call: ToolCall) -> str:
        """Run one tool call; its output (or error) as the text the model reads next."""
        record: dict[str, Any] = {"step": step, "tool": call.name, "arguments": call.arguments}
        run.calls.append(record)
        tool = run.tools.get(call.name)
        if tool is None:
            record["error"] = f"unknown tool {call.name!r}"
            return _text({"error": record["error"]})
        if tool.session is not None:
            return await self._call_mcp(run, tool, call, record)
        assert tool.kind is not None
        request = JobRequest(
            kind=tool.kind,
            payload=call.arguments,
            queue=run.spec.tool_queue,
            timeout_s=run.spec.tool_timeout_s,
            idempotency_key=f"agent:{run.job.id}:{step}:{index}",
            parent_id=run.job.id,
        )
        try:
            (submitted,) = await self.orchestrator.submit(run.job.tenant, [request])
        except FaenaError as e:
            record["error"] = e.message
            return _text({"error": e.message})
        child = submitted.job
        record["job_id"] = child.id
        verb = "runs" if submitted.created else "reuses"
        run.sink.log(LogStream.SYSTEM, f"step {step}: {call.name} {verb} job {child.id}\n")
        # A little beyond the child's own timeout: its failure, not our wait, should end it.
        child = await self.orchestrator.wait(
            run.job.tenant, child.id, run.spec.tool_timeout_s + 5.0
        )
        record["state"] = child.state.value
        if not child.is_terminal:
            with contextlib.suppress(FaenaError):
                await self.orchestrator.cancel(run.job.tenant, child.id)
            record["error"] = "tool timed out"
            return _text({"error": record["error"]})
        if child.state.value != "succeeded":
            record["error"] = child.error or child.state.value
            return _text({"error": record["error"]})
        return _text(child.result)

    async def _call_mcp(
        self, run: _Run, tool: _Tool, call: ToolCall, record: dict[str, Any]
    ) -> str:
        assert tool.session is not None
        record["mcp"] = tool.server
        try:
            result = await tool.session.call_tool(
                tool.mcp_name, call.arguments, run.spec.tool_timeout_s
            )
        except Exception as e:
            record["error"] = _describe(e)
            return _text({"error": record["error"]})
        run.sink.log(LogStream.SYSTEM, f"mcp {tool.server}.{tool.mcp_name} called\n")
        if result.is_error:
            record["error"] = _text(result.content)
            return _text({"error": result.content})
        return _text(result.content)

    def _stopped(self, run: _Run, reason: str) -> AgentOutcome:
        run.sink.log(LogStream.SYSTEM, f"agent stopped: {reason}\n")
        return AgentOutcome(False, result=self._result(run, None), error=f"agent stopped: {reason}")

    def _result(self, run: _Run, answer: str | None) -> dict[str, Any]:
        return {
            "answer": answer,
            "steps": run.steps,
            "cost": round(run.cost, 6),
            "tool_calls": run.calls,
        }


class AgentKind:
    """The ``agent`` KindHandler for the local pool."""

    def __init__(self, runner: AgentRunner) -> None:
        self.runner = runner

    def validate(self, payload: Any) -> None:
        self.runner.validate(payload)

    async def run(self, job: Job, sink: ExecutionSink) -> AgentOutcome:
        return await self.runner.run(job, sink)

    async def aclose(self) -> None:
        return None


def agent_kinds(runner: AgentRunner) -> Mapping[str, AgentKind]:
    return {KIND: AgentKind(runner)}


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    if len(text) > MAX_TOOL_RESULT:
        text = text[: MAX_TOOL_RESULT - 1] + "…"
    return text


def _describe(e: BaseException) -> str:
    if isinstance(e, BaseExceptionGroup) and e.exceptions:
        return _describe(e.exceptions[0])
    message = " ".join(str(e).split())
    return f"{type(e).__name__}: {message}"[:500] if message else type(e).__name__
