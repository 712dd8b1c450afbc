"""One Agno agent run (the ``agno`` kind's engine; ``pip install 'faena[agno]'``).

Every import of ``agno`` (and of the provider SDKs it drives) is in this module, which the
``agno`` kind loads on its first run. The run is streamed: the model's text goes to
``hooks.text`` as it arrives, each model call is announced to ``hooks.before_model_call`` (which
may stop the run before the request is sent: a budget, ``max_steps``) and reported to
``hooks.after_model_call`` with its tokens. Tools are plain async callables that take the
model's arguments and return the text it reads next.

The API key is always handed over (a placeholder when the provider has none), so the SDKs
never fall back to ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` from the server's environment;
telemetry to Agno's servers is off unless ``AGNO_TELEMETRY=true`` says otherwise.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from agno.agent import Agent
from agno.models.base import Model
from agno.run.agent import (
    ModelRequestCompletedEvent,
    ModelRequestStartedEvent,
    RunContentEvent,
    RunErrorEvent,
)
from agno.run.agent import RunOutput as AgnoRunOutput
from agno.tools.function import Function

SCHEMA_HINT = "Answer with only a JSON value that matches this JSON Schema, no prose: "
NO_KEY = "no-key-configured"  # sent when the provider has no api_key_secret (a local server)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the model is: ``protocol`` is the faena provider kind (``openai``: any
    OpenAI-compatible Chat Completions server; ``anthropic``: the Messages API)."""

    protocol: str
    model: str
    base_url: str
    api_key: str | None
    timeout_s: float = 60.0
    max_retries: int = 0


@dataclass(frozen=True, slots=True)
class AgnoTool:
    name: str
    description: str
    parameters: dict[str, Any]
    call: Callable[[dict[str, Any]], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class ModelCall:
    """One answered model request of the run."""

    tokens_in: int
    tokens_out: int
    latency_s: float
    content: str  # the text it streamed (empty for a turn of tool calls)


class RunHooks(Protocol):
    async def before_model_call(self) -> str | None:
        """Why the next model request must not be made (the run stops), or None."""
        ...

    async def after_model_call(self, call: ModelCall) -> None: ...

    def text(self, delta: str) -> None: ...


@dataclass(slots=True)
class RunReport:
    content: Any = None  # the final answer: text, or the parsed object with response_schema
    error: str | None = None  # Agno's (the provider's) error
    error_type: str | None = None  # e.g. model_provider_error, model_rate_limit_error
    stopped: str | None = None  # why before_model_call stopped it


def build_model(endpoint: Endpoint, temperature: float | None = None) -> Model:
    api_key = endpoint.api_key or NO_KEY
    if endpoint.protocol == "anthropic":
        from agno.models.anthropic import Claude

        return Claude(
            id=endpoint.model,
            api_key=api_key,
            temperature=temperature,
            timeout=endpoint.timeout_s,
            client_params={"base_url": endpoint.base_url, "max_retries": endpoint.max_retries},
        )
    if endpoint.protocol == "openai":
        from agno.models.openai.like import OpenAILike

        return OpenAILike(
            id=endpoint.model,
            api_key=api_key,
            base_url=endpoint.base_url,
            temperature=temperature,
            timeout=endpoint.timeout_s,
            max_retries=endpoint.max_retries,
        )
    raise ValueError(f"the agno kind cannot drive a provider of kind {endpoint.protocol!r}")


def _function(tool: AgnoTool) -> Function:
    async def entrypoint(**arguments: Any) -> str:
        return await tool.call(arguments)

    return Function(
        name=tool.name,
        description=tool.description,
        parameters=tool.parameters,
        entrypoint=entrypoint,
        skip_entrypoint_processing=True,  # the schema is ours, not the wrapper's signature
    )


async def run_agent(
    endpoint: Endpoint,
    *,
    instructions: str | None,
    text: str,
    tools: list[AgnoTool],
    hooks: RunHooks,
    temperature: float | None = None,
    response_schema: dict[str, Any] | None = None,
) -> RunReport:
    model = build_model(endpoint, temperature)
    output_schema = None
    if response_schema is not None:
        if endpoint.protocol == "openai":  # native structured output, in the wire's own shape
            output_schema = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": response_schema},
            }
        else:  # Claude: said in the instructions; faena parses and checks the answer
            hint = SCHEMA_HINT + orjson.dumps(response_schema).decode()
            instructions = f"{instructions}\n\n{hint}" if instructions else hint
    agent = Agent(
        model=model,
        instructions=instructions,
        tools=[_function(t) for t in tools] or None,
        output_schema=output_schema,
        telemetry=False,
    )
    report = RunReport()
    content: list[str] = []
    started = time.perf_counter()
    # An async generator (typed as an iterator): closed below if a hook stops the run.
    events: Any = agent.arun(text, stream=True, stream_events=True, yield_run_output=True)
    try:
        async for event in events:
            if isinstance(event, ModelRequestStartedEvent):
                reason = await hooks.before_model_call()
                if reason is not None:
                    report.stopped = reason
                    break
                content.clear()
                started = time.perf_counter()
            elif isinstance(event, RunContentEvent):
                if isinstance(event.content, str) and event.content:
                    content.append(event.content)
                    hooks.text(event.content)
            elif isinstance(event, ModelRequestCompletedEvent):
                await hooks.after_model_call(
                    ModelCall(
                        event.input_tokens or 0,
                        event.output_tokens or 0,
                        time.perf_counter() - started,
                        "".join(content),
                    )
                )
            elif isinstance(event, RunErrorEvent):
                report.error = str(event.content or "the agno run failed")
                report.error_type = event.error_type
            elif isinstance(event, AgnoRunOutput) and report.error is None:
                report.content = event.content
    finally:
        with contextlib.suppress(Exception):
            await events.aclose()
        await _close_clients(model)
    return report


async def _close_clients(model: Any) -> None:
    """The SDK client the model made for this run (its connections to the provider)."""
    client = getattr(model, "async_client", None)
    if client is not None:
        with contextlib.suppress(Exception):
            await client.close()
