"""Everything of workflows that runs in the background of a server, started and stopped as one:
the engine, the cron scheduler, event triggers and the outbox relay with its webhook deliveries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from faena.ports.bus import EventBus
from faena.ports.clock import Clock
from faena.services.deliveries import Webhooks
from faena.services.orchestrator import Orchestrator
from faena.services.schedules import Scheduler
from faena.services.triggers import EventTriggers, InboundHooks
from faena.services.workflow_engine import Store, WorkflowEngine
from faena.services.workflows import WorkflowService


@dataclass
class Automation:
    engine: WorkflowEngine
    workflows: WorkflowService
    services: list[Any] = field(default_factory=list)  # each with start() and async stop()
    hooks: InboundHooks | None = None
    webhooks: Webhooks | None = None

    def start(self) -> None:
        self.engine.start()
        for service in self.services:
            service.start()

    async def stop(self) -> None:
        for service in reversed(self.services):
            await service.stop()
        await self.engine.stop()


def build_automation(
    store: Store,
    orchestrator: Orchestrator,
    bus: EventBus,
    clock: Clock,
    *,
    sweep_s: float = 2.0,
    schedule_poll_s: float = 1.0,
    delivery_poll_s: float = 0.5,
) -> Automation:
    engine = WorkflowEngine(store, orchestrator, bus, clock, sweep_s=sweep_s)
    workflows = WorkflowService(engine)
    automation = Automation(engine, workflows)
    automation.hooks = InboundHooks(workflows)
    automation.webhooks = Webhooks(store, bus, clock, poll_s=delivery_poll_s)
    automation.services.append(Scheduler(workflows, clock, poll_s=schedule_poll_s))
    automation.services.append(EventTriggers(workflows, bus))
    automation.services.append(automation.webhooks)
    return automation
