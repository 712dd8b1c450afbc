"""What starts runs besides the API and cron: inbound webhooks and event triggers.

An inbound webhook ``POST /v1/hooks/{token}`` starts a run of the workflow the token belongs to
(if its definition enables ``webhook``), with the JSON body as inputs; ``verify: true`` demands
an HMAC signature made with the workflow's webhook secret. An event trigger starts a run when a
job of a kind or a run of a workflow reaches a state; its inputs are ``{"event": {...}}``. Both
pass an idempotency key (the caller's ``Idempotency-Key``; the source and state of the event) so
a retried call or an event seen by two servers starts one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from contextlib import closing
from typing import Any

import orjson
import structlog

from faena.domain.errors import FaenaError, NotFound, Unauthorized, ValidationError
from faena.domain.events import Event
from faena.domain.runs import Run, WorkflowInfo
from faena.domain.signatures import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from faena.domain.workflows import TriggerDef, parse_workflow
from faena.ports.bus import EventBus
from faena.services.workflows import WorkflowService

log = structlog.get_logger("faena.triggers")

REFRESH_S = 5.0
HOOK_CACHE_S = 1.0
MAX_HOOK_KEY = 150


class InboundHooks:
    def __init__(self, workflows: WorkflowService) -> None:
        self.workflows = workflows
        self._cache: dict[str, tuple[float, WorkflowInfo | None]] = {}

    async def _find(self, token: str) -> WorkflowInfo | None:
        """The workflow of a token, cached for a second (a burst of calls reads it once)."""
        now = time.monotonic()
        cached = self._cache.get(token)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await self.workflows.store.find_hook(token)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[token] = (now + HOOK_CACHE_S, found)
        return found

    async def receive(
        self, token: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[Run, bool]:
        """Start (or find, by ``Idempotency-Key``) the run a webhook call asks for."""
        info = await self._find(token)
        if info is None:
            raise NotFound("no such webhook")
        version = info.latest_version
        webhook = (await self.workflows.engine.definition(info.tenant, info.name, version)).webhook
        if webhook is None or not webhook.enabled:
            raise NotFound("no such webhook")
        if webhook.verify:
            problem = verify(
                info.hook_secret,
                headers.get(TIMESTAMP_HEADER.lower()),
                headers.get(SIGNATURE_HEADER.lower()),
                body,
                self.workflows.clock.now(),
            )
            if problem is not None:
                raise Unauthorized(f"webhook signature refused: {problem}")
        inputs: Any = {}
        if body.strip():
            try:
                inputs = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise ValidationError("the webhook body is not JSON") from None
        if not isinstance(inputs, dict):
            raise ValidationError("the webhook body must be a JSON object (the run's inputs)")
        key = headers.get("idempotency-key")
        if key is not None and not 0 < len(key) <= MAX_HOOK_KEY:
            raise ValidationError(f"Idempotency-Key must be 1 to {MAX_HOOK_KEY} characters")
        return await self.workflows.start(
            info.tenant,
            info.name,
            inputs,
            version=version,
            trigger="webhook",
            idempotency_key=None if key is None else f"hook:{info.name}:{key}",
            advance_now=False,
        )


class EventTriggers:
    """Starts workflows whose ``triggers`` match job and run events seen on the bus."""

    def __init__(self, workflows: WorkflowService, bus: EventBus) -> None:
        self.workflows = workflows
        self.bus = bus
        self._triggers: list[tuple[str, str, TriggerDef]] = []  # (tenant, workflow, trigger)
        self._tasks: list[asyncio.Task[None]] = []
        self._refreshed = asyncio.Event()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._refresh_forever(), name="triggers-refresh"),
            loop.create_task(self._listen(), name="triggers-listen"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def refresh(self) -> None:
        found = []
        for version in await self.workflows.store.list_triggered_workflows():
            for trigger in parse_workflow(version.definition).triggers:
                found.append((version.tenant, version.name, trigger))
        self._triggers = found

    async def _refresh_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("loading triggers failed", error=repr(e))
            await asyncio.sleep(REFRESH_S)

    def _may_trigger(self, event: Event) -> bool:
        """The bus filter: job and run state changes, while any trigger is loaded."""
        return bool(self._triggers) and event.type in ("job.state", "run.state")

    async def _listen(self) -> None:
        with closing(self.bus.subscribe(where=self._may_trigger)) as sub:
            while True:
                event = await sub.get()
                if self._triggers:
                    try:
                        await self.handle(event)
                    except asyncio.CancelledError:
                        raise
                    except Exception as e:  # one bad event must not stop the listener
                        log.warning("handling a trigger event failed", error=repr(e))

    async def handle(self, event: Event) -> int:
        """Start the runs ``event`` triggers; return how many were started."""
        started = 0
        for tenant, workflow, trigger in self._triggers:
            if tenant != event.tenant or not _matches(trigger, event):
                continue
            source = event.job_id if event.type == "job.state" else event.data.get("run_id")
            payload = {"type": event.type, "state": event.data.get("state"), **event.data}
            if event.job_id is not None:
                payload["job_id"] = event.job_id
            try:
                _, created = await self.workflows.start(
                    tenant,
                    workflow,
                    {"event": payload},
                    trigger=f"event:{event.type}",
                    idempotency_key=f"event:{workflow}:{source}:{event.data.get('state')}",
                )
                started += created
            except FaenaError as e:
                log.warning("triggered run not started", workflow=workflow, error=e.message)
        return started


def _matches(trigger: TriggerDef, event: Event) -> bool:
    if event.data.get("state") != trigger.state:
        return False
    if trigger.on == "job":
        return event.type == "job.state" and event.data.get("kind") == trigger.kind
    return event.type == "run.state" and event.data.get("workflow") == trigger.workflow
