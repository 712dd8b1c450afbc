"""The WorkflowStore port: workflow versions, runs, schedules, the outbox and webhook
deliveries. One frozen params dataclass per operation, as in :mod:`faena.ports.store`.

Runs are saved as a compare-and-swap on ``revision``: two servers advancing one run never both
win. Events passed with a change are written to the outbox in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from faena.domain.jobs import TERMINAL_STATES, JobSpec, JobState
from faena.domain.runs import (
    Delivery,
    DeliveryState,
    OutboxEvent,
    Run,
    RunState,
    Schedule,
    Subscription,
    WorkflowInfo,
    WorkflowVersion,
)
from faena.ports.store import Submitted


@dataclass(frozen=True, slots=True)
class PutWorkflowParams:
    """Store ``definition`` as a new version unless it equals the latest. The first version
    creates the workflow with ``hook_token``/``hook_secret``. ``schedule`` replaces the
    workflow's schedule (None removes it); an unchanged cron keeps its next tick and pause."""

    tenant: str
    name: str
    definition: dict[str, Any]
    now: float
    hook_token: str
    hook_secret: str
    schedule: Schedule | None = None
    has_triggers: bool = False


@dataclass(frozen=True, slots=True)
class PutWorkflowResult:
    info: WorkflowInfo
    version: WorkflowVersion
    created: bool  # False: identical to the latest version, which is returned


@dataclass(frozen=True, slots=True)
class GetVersionParams:
    tenant: str
    name: str
    version: int | None = None  # None: the latest


@dataclass(frozen=True, slots=True)
class CreateRunParams:
    """Insert ``run``; with an ``idempotency_key`` already used by the tenant, return that run."""

    run: Run
    events: Sequence[OutboxEvent] = ()


@dataclass(frozen=True, slots=True)
class CreatedRun:
    run: Run
    created: bool


@dataclass(frozen=True, slots=True)
class SaveRunParams:
    """Replace the run if its stored revision is still ``run.revision``; the saved run has
    ``revision + 1``. ``events`` go to the outbox in the same transaction."""

    run: Run
    events: Sequence[OutboxEvent] = ()


@dataclass(frozen=True, slots=True)
class RunChange:
    """One run's change for :meth:`WorkflowStore.advance_runs`.

    ``create``: insert ``run`` (a new run), unless its ``idempotency_key`` is taken; otherwise
    a compare-and-swap on ``run.revision`` as in :class:`SaveRunParams`. Only when that applies
    are ``jobs`` (the step jobs the change submits; ``jobs[i]`` gets the id ``job_ids[i]``)
    stored, idempotency keys honoured, and ``events`` written to the outbox."""

    run: Run
    events: Sequence[OutboxEvent] = ()
    jobs: Sequence[JobSpec] = ()
    job_ids: Sequence[str] = ()
    create: bool = False


@dataclass(frozen=True, slots=True)
class AdvanceRunsParams:
    """Apply every change in one transaction (each with its own compare-and-swap)."""

    changes: Sequence[RunChange]
    now: float


@dataclass(frozen=True, slots=True)
class AdvancedRun:
    """The outcome of one :class:`RunChange`.

    ``applied``: the run is stored as ``run`` (created with ``revision`` 0, or saved with
    ``revision + 1``) and ``jobs`` are the change's jobs, in order (``created`` False for a job
    whose idempotency key was taken: the stored run refers to that earlier job instead).
    Not applied: ``run`` is the run holding the taken idempotency key (``create``), or None
    when another writer changed the run first; nothing of the change was written."""

    run: Run | None
    applied: bool
    jobs: list[Submitted] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StepJob:
    """What the engine reads of a step's job (``get_step_jobs``): less than a whole job."""

    id: str
    state: JobState
    attempts: int
    result: Any = None
    error: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclass(frozen=True, slots=True)
class ListRunsParams:
    """Newest first; ``cursor`` is the id of the last run of the previous page."""

    tenant: str
    workflow: str | None = None
    states: frozenset[RunState] | None = None
    limit: int = 50
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class RunPage:
    runs: list[Run]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ActiveRunsParams:
    """Running runs of every tenant, oldest first, after run id ``after``."""

    limit: int = 500
    after: str | None = None


@dataclass(frozen=True, slots=True)
class DueSchedulesParams:
    now: float
    limit: int = 100


@dataclass(frozen=True, slots=True)
class AdvanceScheduleParams:
    """Move a schedule's next tick from ``expected`` to ``next_fire_at`` (compare-and-swap)."""

    tenant: str
    workflow: str
    expected: float
    next_fire_at: float


@dataclass(frozen=True, slots=True)
class PauseScheduleParams:
    """Pause or resume; resuming sets ``next_fire_at`` when given."""

    tenant: str
    workflow: str
    paused: bool
    next_fire_at: float | None = None


@dataclass(frozen=True, slots=True)
class DispatchOutboxParams:
    """Turn up to ``limit`` undispatched outbox events into one delivery per matching
    subscription (each with a fresh id from ``new_id``), and mark them dispatched."""

    now: float
    limit: int = 500


@dataclass(frozen=True, slots=True)
class ClaimDeliveriesParams:
    """Pending deliveries due at ``now``; each claimed one is hidden for ``lease_s``."""

    now: float
    lease_s: float
    limit: int = 100


@dataclass(frozen=True, slots=True)
class RecordDeliveryParams:
    """The outcome of an attempt, applied if the delivery is still pending at ``attempts``."""

    delivery_id: str
    attempts: int  # the attempts count the deliverer saw when it claimed it
    state: DeliveryState
    next_attempt_at: float
    now: float
    status: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ListDeliveriesParams:
    tenant: str
    state: DeliveryState | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class DeliveryBacklog:
    """What the webhook relay has yet to do, across tenants (a gauge in ``/metrics``)."""

    outbox: int  # events not yet turned into deliveries
    pending: int  # deliveries waiting for their (next) attempt


class WorkflowStore(Protocol):
    async def put_workflow(self, params: PutWorkflowParams) -> PutWorkflowResult: ...

    async def get_workflow(self, tenant: str, name: str) -> WorkflowInfo | None: ...

    async def get_workflow_version(self, params: GetVersionParams) -> WorkflowVersion | None: ...

    async def list_workflows(self, tenant: str) -> list[WorkflowInfo]: ...

    async def list_workflow_versions(self, tenant: str, name: str) -> list[WorkflowVersion]: ...

    async def find_hook(self, token: str) -> WorkflowInfo | None: ...

    async def list_triggered_workflows(self) -> list[WorkflowVersion]:
        """The latest versions, across tenants, of the workflows that declare triggers."""

    async def create_run(self, params: CreateRunParams) -> CreatedRun: ...

    async def get_run(self, tenant: str, run_id: str) -> Run | None: ...

    async def delivery_backlog(self) -> DeliveryBacklog:
        """Undispatched outbox events and pending deliveries, all tenants (cheap: indexed)."""

    async def get_runs(self, tenant: str, run_ids: Sequence[str]) -> list[Run]:
        """The runs of ``tenant`` among ``run_ids``, in no particular order, missing ones left
        out: the engine reads the runs it advances together in one query."""

    async def list_runs(self, params: ListRunsParams) -> RunPage: ...

    async def list_active_runs(self, params: ActiveRunsParams) -> list[Run]: ...

    async def save_run(self, params: SaveRunParams) -> Run | None:
        """The saved run, or None when another writer changed it first."""

    async def save_runs(self, params: Sequence[SaveRunParams]) -> list[Run | None]:
        """:meth:`save_run` for each, in one transaction (each its own compare-and-swap)."""

    async def advance_runs(self, params: AdvanceRunsParams) -> list[AdvancedRun]:
        """Create or save runs together with the step jobs they submit and their outbox
        events, in one transaction: the workflow engine's hot path (one write per batch of
        runs, where a save and a submit would be two, and a crash between them impossible)."""

    async def get_step_jobs(self, tenant: str, job_ids: Sequence[str]) -> list[StepJob]:
        """State, attempts, result and error of the jobs of ``tenant`` among ``job_ids`` (in
        no particular order, missing ones left out): one light read per batch of runs."""

    async def get_schedule(self, tenant: str, workflow: str) -> Schedule | None: ...

    async def due_schedules(self, params: DueSchedulesParams) -> list[Schedule]: ...

    async def advance_schedule(self, params: AdvanceScheduleParams) -> bool: ...

    async def pause_schedule(self, params: PauseScheduleParams) -> Schedule:
        """NotFound when the workflow has no schedule."""

    async def append_events(self, events: Sequence[OutboxEvent]) -> None: ...

    async def create_subscription(self, subscription: Subscription) -> None: ...

    async def list_subscriptions(self, tenant: str) -> list[Subscription]: ...

    async def delete_subscription(self, tenant: str, subscription_id: str) -> None:
        """NotFound when absent."""

    async def dispatch_outbox(self, params: DispatchOutboxParams) -> int:
        """How many events were dispatched."""

    async def claim_deliveries(self, params: ClaimDeliveriesParams) -> list[Delivery]: ...

    async def record_delivery(self, params: RecordDeliveryParams) -> bool: ...

    async def list_deliveries(self, params: ListDeliveriesParams) -> list[Delivery]: ...

    async def redrive_delivery(self, tenant: str, delivery_id: str, now: float) -> Delivery:
        """A dead delivery back to pending with its attempts reset. NotFound; Conflict."""
