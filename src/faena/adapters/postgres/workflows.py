"""The WorkflowStore on PostgreSQL, mixed into ``PostgresStore``.

Runs are saved with ``UPDATE ... WHERE revision = $n`` (compare-and-swap); the outbox relay and
the deliverer take rows with ``FOR UPDATE SKIP LOCKED``, so several servers share the work and
never dispatch one event twice; a cron tick is claimed by moving ``next_fire_at`` with a CAS.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson

from faena.adapters import workflow_rows
from faena.adapters.postgres import queries as q
from faena.adapters.postgres.rows import insert_jobs_args, row_to_job
from faena.domain.errors import Conflict, NotFound
from faena.domain.ids import new_id
from faena.domain.jobs import Job, JobState
from faena.domain.runs import (
    Delivery,
    DeliveryState,
    OutboxEvent,
    Run,
    Schedule,
    Subscription,
    WorkflowInfo,
    WorkflowVersion,
    event_body,
    wanted_events,
)
from faena.ports.store import Submitted
from faena.ports.workflows import (
    ActiveRunsParams,
    AdvancedRun,
    AdvanceRunsParams,
    AdvanceScheduleParams,
    ClaimDeliveriesParams,
    CreatedRun,
    CreateRunParams,
    DeliveryBacklog,
    DispatchOutboxParams,
    DueSchedulesParams,
    GetVersionParams,
    ListDeliveriesParams,
    ListRunsParams,
    PauseScheduleParams,
    PutWorkflowParams,
    PutWorkflowResult,
    RecordDeliveryParams,
    RunChange,
    RunPage,
    SaveRunParams,
    StepJob,
)

# Row decoders shared with the other SQL adapter (same column order).
_workflow = workflow_rows.workflow_info
_version = workflow_rows.workflow_version
_run = workflow_rows.run
_schedule = workflow_rows.schedule
_delivery = workflow_rows.delivery
_subscription = workflow_rows.subscription

WORKFLOW = """SELECT w.tenant, w.name, w.latest_version, w.hook_token, w.hook_secret,
    w.created_at, w.updated_at, coalesce(s.paused, false)
    FROM workflows w
    LEFT JOIN workflow_schedules s ON s.tenant = w.tenant AND s.workflow = w.name"""
VERSION = "SELECT tenant, name, version, definition, created_at FROM workflow_versions"
RUN = """SELECT id, tenant, workflow, version, state, doc, created_at, updated_at, finished_at,
    idempotency_key, revision FROM workflow_runs"""
SCHEDULE = """SELECT tenant, workflow, cron, timezone, catch_up, next_fire_at, paused
    FROM workflow_schedules"""
DELIVERY_COLUMNS = """id, tenant, subscription_id, event_id, event_type, body, state, attempts,
    next_attempt_at, created_at, last_status, last_error, delivered_at"""
DELIVERY = f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries"
INSERT_EVENTS = """INSERT INTO outbox (tenant, type, data, ts)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[])"""
SUBSCRIBED = "SELECT tenant, events FROM webhook_subscriptions WHERE tenant = ANY($1::text[])"
INSERT_RUN = """INSERT INTO workflow_runs (id, tenant, workflow, version, state, doc,
    idempotency_key, revision, created_at, updated_at, finished_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
    ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"""
SAVE_RUN = """UPDATE workflow_runs SET state = $1, doc = $2, revision = revision + 1,
    updated_at = $3, finished_at = $4 WHERE id = $5 AND revision = $6"""
INSERT_RUNS = """INSERT INTO workflow_runs (id, tenant, workflow, version, state, doc,
    idempotency_key, revision, created_at, updated_at, finished_at)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[],
                         $7::text[], $8::int[], $9::float8[], $10::float8[], $11::float8[])
    ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id"""
SAVE_RUNS = """UPDATE workflow_runs r SET state = u.state, doc = u.doc,
    revision = r.revision + 1, updated_at = u.updated_at, finished_at = u.finished_at
    FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::float8[], $6::float8[])
        AS u(id, revision, state, doc, updated_at, finished_at)
    WHERE r.id = u.id AND r.revision = u.revision
    RETURNING r.id"""
STEP_JOBS = """SELECT id, state, attempts, result, error FROM jobs
    WHERE tenant = $1 AND id = ANY($2::text[])"""
RUNS_BY_KEY = f"""{RUN} WHERE (tenant, idempotency_key) IN
    (SELECT * FROM unnest($1::text[], $2::text[]))"""
UPSERT_SCHEDULE = """INSERT INTO workflow_schedules VALUES ($1, $2, $3, $4, $5, $6, false)
    ON CONFLICT (tenant, workflow) DO UPDATE SET
        next_fire_at = CASE WHEN workflow_schedules.cron = EXCLUDED.cron
            AND workflow_schedules.timezone = EXCLUDED.timezone
            THEN workflow_schedules.next_fire_at ELSE EXCLUDED.next_fire_at END,
        cron = EXCLUDED.cron, timezone = EXCLUDED.timezone, catch_up = EXCLUDED.catch_up"""
CLAIM_DELIVERIES = f"""UPDATE webhook_deliveries SET next_attempt_at = $1 + $2
    WHERE id IN (SELECT id FROM webhook_deliveries
                 WHERE state = 'pending' AND next_attempt_at <= $1
                 ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
    RETURNING {DELIVERY_COLUMNS}"""


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _events(conn: Any, events: Sequence[OutboxEvent]) -> None:
    """Write the events a subscription of their tenant wants (read in this transaction): the
    webhook relay is the outbox's only reader."""
    if not events:
        return
    patterns: dict[str, list[str]] = {}
    for tenant, raw in await conn.fetch(SUBSCRIBED, sorted({e.tenant for e in events})):
        patterns.setdefault(tenant, []).extend(orjson.loads(raw))
    wanted = wanted_events(events, patterns) if patterns else []
    if wanted:
        await conn.execute(
            INSERT_EVENTS,
            [e.tenant for e in wanted],
            [e.type for e in wanted],
            [_dumps(e.data) for e in wanted],
            [e.ts for e in wanted],
        )


class PostgresWorkflows:
    """The :class:`~faena.ports.workflows.WorkflowStore` operations of the PostgreSQL store."""

    # job.state events reach the outbox from triggers on jobs (migration 0014).
    job_events_in_outbox = True

    if TYPE_CHECKING:

        def _connection(self, doing: str) -> AbstractAsyncContextManager[Any]: ...

        def _tenant_connection(
            self, tenant: str, doing: str
        ) -> AbstractAsyncContextManager[Any]: ...

    # -- workflows ---------------------------------------------------------------------------

    async def put_workflow(self, p: PutWorkflowParams) -> PutWorkflowResult:
        definition = orjson.loads(orjson.dumps(p.definition))
        async with self._tenant_connection(p.tenant, "storing a workflow") as conn:
            row = await conn.fetchrow(
                "SELECT latest_version FROM workflows WHERE tenant = $1 AND name = $2 FOR UPDATE",
                p.tenant,
                p.name,
            )
            if row is not None:
                latest = _version(
                    await conn.fetchrow(
                        VERSION + " WHERE tenant = $1 AND name = $2 AND version = $3",
                        p.tenant,
                        p.name,
                        row[0],
                    )
                )
                if latest.definition == definition:
                    info = _workflow(
                        await conn.fetchrow(
                            WORKFLOW + " WHERE w.tenant = $1 AND w.name = $2", p.tenant, p.name
                        )
                    )
                    return PutWorkflowResult(info, latest, created=False)
            number = 1 if row is None else row[0] + 1
            await conn.execute(
                "INSERT INTO workflow_versions VALUES ($1, $2, $3, $4, $5)",
                p.tenant,
                p.name,
                number,
                _dumps(definition),
                p.now,
            )
            if row is None:
                await conn.execute(
                    "INSERT INTO workflows VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    p.tenant,
                    p.name,
                    number,
                    p.hook_token,
                    p.hook_secret,
                    p.has_triggers,
                    p.now,
                    p.now,
                )
            else:
                await conn.execute(
                    "UPDATE workflows SET latest_version = $1, has_triggers = $2, "
                    "updated_at = $3 WHERE tenant = $4 AND name = $5",
                    number,
                    p.has_triggers,
                    p.now,
                    p.tenant,
                    p.name,
                )
            s = p.schedule
            if s is None:
                await conn.execute(
                    "DELETE FROM workflow_schedules WHERE tenant = $1 AND workflow = $2",
                    p.tenant,
                    p.name,
                )
            else:
                await conn.execute(
                    UPSERT_SCHEDULE,
                    p.tenant,
                    p.name,
                    s.cron,
                    s.timezone,
                    s.catch_up,
                    s.next_fire_at,
                )
            await _events(
                conn,
                [
                    OutboxEvent(
                        "workflow.applied", p.tenant, {"workflow": p.name, "version": number}, p.now
                    )
                ],
            )
            info = _workflow(
                await conn.fetchrow(
                    WORKFLOW + " WHERE w.tenant = $1 AND w.name = $2", p.tenant, p.name
                )
            )
        version = WorkflowVersion(p.tenant, p.name, number, definition, p.now)
        return PutWorkflowResult(info, version, created=True)

    async def get_workflow(self, tenant: str, name: str) -> WorkflowInfo | None:
        async with self._tenant_connection(tenant, "reading a workflow") as conn:
            r = await conn.fetchrow(WORKFLOW + " WHERE w.tenant = $1 AND w.name = $2", tenant, name)
        return _workflow(r) if r else None

    async def get_workflow_version(self, p: GetVersionParams) -> WorkflowVersion | None:
        # Under row-level security too: the engine caches each version it compiles, so this
        # is read once per version and server (and by GET /v1/workflows/{name}).
        async with self._tenant_connection(p.tenant, "reading a workflow version") as conn:
            if p.version is None:
                r = await conn.fetchrow(
                    VERSION + " WHERE tenant = $1 AND name = $2 ORDER BY version DESC LIMIT 1",
                    p.tenant,
                    p.name,
                )
            else:
                r = await conn.fetchrow(
                    VERSION + " WHERE tenant = $1 AND name = $2 AND version = $3",
                    p.tenant,
                    p.name,
                    p.version,
                )
        return _version(r) if r else None

    async def list_workflows(self, tenant: str) -> list[WorkflowInfo]:
        async with self._tenant_connection(tenant, "listing workflows") as conn:
            rows = await conn.fetch(WORKFLOW + " WHERE w.tenant = $1 ORDER BY w.name", tenant)
        return [_workflow(r) for r in rows]

    async def list_workflow_versions(self, tenant: str, name: str) -> list[WorkflowVersion]:
        async with self._tenant_connection(tenant, "listing workflow versions") as conn:
            rows = await conn.fetch(
                VERSION + " WHERE tenant = $1 AND name = $2 ORDER BY version DESC", tenant, name
            )
        return [_version(r) for r in rows]

    async def find_hook(self, token: str) -> WorkflowInfo | None:
        async with self._connection("finding a webhook") as conn:
            r = await conn.fetchrow(WORKFLOW + " WHERE w.hook_token = $1", token)
        return _workflow(r) if r else None

    async def list_triggered_workflows(self) -> list[WorkflowVersion]:
        async with self._connection("listing triggered workflows") as conn:
            rows = await conn.fetch(
                VERSION + " v WHERE EXISTS (SELECT 1 FROM workflows w WHERE w.tenant = v.tenant"
                " AND w.name = v.name AND w.latest_version = v.version AND w.has_triggers)"
            )
        return [_version(r) for r in rows]

    # -- runs --------------------------------------------------------------------------------

    async def create_run(self, p: CreateRunParams) -> CreatedRun:
        run = p.run
        async with self._tenant_connection(run.tenant, "creating a run") as conn:
            status = await conn.execute(
                INSERT_RUN,
                run.id,
                run.tenant,
                run.workflow,
                run.version,
                run.state.value,
                _dumps(run.to_doc()),
                run.idempotency_key,
                run.revision,
                run.created_at,
                run.updated_at,
                run.finished_at,
            )
            if status.endswith(" 0"):
                r = await conn.fetchrow(
                    RUN + " WHERE tenant = $1 AND idempotency_key = $2",
                    run.tenant,
                    run.idempotency_key,
                )
                return CreatedRun(_run(r), created=False)
            await _events(conn, p.events)
            r = await conn.fetchrow(RUN + " WHERE id = $1", run.id)
        return CreatedRun(_run(r), created=True)

    async def get_run(self, tenant: str, run_id: str) -> Run | None:
        async with self._tenant_connection(tenant, "reading a run") as conn:
            r = await conn.fetchrow(RUN + " WHERE tenant = $1 AND id = $2", tenant, run_id)
        return _run(r) if r else None

    async def get_runs(self, tenant: str, run_ids: Sequence[str]) -> list[Run]:
        if not run_ids:
            return []
        # The engine's batch read while it advances runs: as the owner, scoped by its WHERE
        # tenant = $1 (one round trip; docs/security.md lists what runs under row-level security).
        async with self._connection("reading runs") as conn:
            rows = await conn.fetch(
                RUN + " WHERE tenant = $1 AND id = ANY($2::text[])", tenant, list(run_ids)
            )
        return [_run(r) for r in rows]

    async def get_step_jobs(self, tenant: str, job_ids: Sequence[str]) -> list[StepJob]:
        if not job_ids:
            return []
        async with self._connection("reading step jobs") as conn:
            rows = await conn.fetch(STEP_JOBS, tenant, list(job_ids))
        return [StepJob(r[0], JobState(r[1]), r[2], r[3], r[4]) for r in rows]

    async def list_runs(self, p: ListRunsParams) -> RunPage:
        states = None if p.states is None else [s.value for s in p.states]
        async with self._tenant_connection(p.tenant, "listing runs") as conn:
            rows = await conn.fetch(
                RUN + " WHERE tenant = $1 AND ($2::text IS NULL OR workflow = $2)"
                " AND ($3::text[] IS NULL OR state = ANY($3)) AND ($4::text IS NULL OR id < $4)"
                " ORDER BY id DESC LIMIT $5",
                p.tenant,
                p.workflow,
                states,
                p.cursor,
                p.limit + 1,
            )
        runs = [_run(r) for r in rows]
        more = len(runs) > p.limit
        runs = runs[: p.limit]
        return RunPage(runs, runs[-1].id if more and runs else None)

    async def list_active_runs(self, p: ActiveRunsParams) -> list[Run]:
        async with self._connection("listing running runs") as conn:
            rows = await conn.fetch(
                RUN + " WHERE state = 'running' AND id > $1 ORDER BY id LIMIT $2",
                p.after or "",
                p.limit,
            )
        return [_run(r) for r in rows]

    async def save_runs(self, params: Sequence[SaveRunParams]) -> list[Run | None]:
        if not params:
            return []
        out: list[Run | None] = []
        async with self._connection("saving runs") as conn, conn.transaction():
            for p in params:
                run = p.run
                status = await conn.execute(
                    SAVE_RUN,
                    run.state.value,
                    _dumps(run.to_doc()),
                    run.updated_at,
                    run.finished_at,
                    run.id,
                    run.revision,
                )
                if status.endswith(" 0"):
                    out.append(None)
                    continue
                await _events(conn, p.events)
                saved = run.copy()
                saved.revision += 1
                out.append(saved)
        return out

    async def advance_runs(self, p: AdvanceRunsParams) -> list[AdvancedRun]:
        """Per batch: one UPDATE (the compare-and-swaps) and one INSERT of runs, one INSERT
        of jobs and one of events, whatever the number of runs."""
        changes = p.changes
        if not changes:
            return []
        creates = [c.run for c in changes if c.create]
        saves = [c.run for c in changes if not c.create]
        async with self._connection("advancing runs") as conn, conn.transaction():
            won: set[str] = set()
            if saves:
                won.update(r[0] for r in await conn.fetch(SAVE_RUNS, *_save_columns(saves)))
            if creates:
                won.update(r[0] for r in await conn.fetch(INSERT_RUNS, *_run_columns(creates)))
            taken = [r for r in creates if r.id not in won]
            holders: dict[tuple[str, str | None], Run] = {}
            if taken:
                rows = await conn.fetch(
                    RUNS_BY_KEY, [r.tenant for r in taken], [r.idempotency_key for r in taken]
                )
                holders = {(h.tenant, h.idempotency_key): h for h in map(_run, rows)}
            applied = [c for c in changes if c.run.id in won]
            jobs = await _insert_step_jobs(conn, applied, p.now)
            results: dict[str, AdvancedRun] = {}
            events: list[OutboxEvent] = []
            for change, submitted in zip(applied, jobs, strict=True):
                run = change.run
                earlier = {
                    planned: s.job.id
                    for planned, s in zip(change.job_ids, submitted, strict=True)
                    if s.job.id != planned
                }
                if earlier:  # the doc written above names the planned ids: name the stored
                    run = workflow_rows.patch_job_ids(run, earlier)
                    await conn.execute(
                        "UPDATE workflow_runs SET doc = $2 WHERE id = $1",
                        run.id,
                        _dumps(run.to_doc()),
                    )
                revision = run.revision if change.create else run.revision + 1
                stored = replace(run, revision=revision)
                results[run.id] = AdvancedRun(stored, applied=True, jobs=submitted)
                events.extend(change.events)
            await _events(conn, events)
        out = []
        for change in changes:
            run = change.run
            found = results.get(run.id)
            if found is None:
                holder = holders.get((run.tenant, run.idempotency_key)) if change.create else None
                found = AdvancedRun(holder, applied=False)
            out.append(found)
        return out

    async def save_run(self, p: SaveRunParams) -> Run | None:
        run = p.run
        async with self._connection("saving a run") as conn, conn.transaction():
            status = await conn.execute(
                SAVE_RUN,
                run.state.value,
                _dumps(run.to_doc()),
                run.updated_at,
                run.finished_at,
                run.id,
                run.revision,
            )
            if status.endswith(" 0"):
                if await conn.fetchval("SELECT 1 FROM workflow_runs WHERE id = $1", run.id):
                    return None
                raise NotFound(f"no run {run.id!r}")
            await _events(conn, p.events)
            r = await conn.fetchrow(RUN + " WHERE id = $1", run.id)
        return _run(r)

    # -- schedules ---------------------------------------------------------------------------

    async def get_schedule(self, tenant: str, workflow: str) -> Schedule | None:
        async with self._tenant_connection(tenant, "reading a schedule") as conn:
            r = await conn.fetchrow(
                SCHEDULE + " WHERE tenant = $1 AND workflow = $2", tenant, workflow
            )
        return _schedule(r) if r else None

    async def due_schedules(self, p: DueSchedulesParams) -> list[Schedule]:
        async with self._connection("reading due schedules") as conn:
            rows = await conn.fetch(
                SCHEDULE + " WHERE NOT paused AND next_fire_at <= $1 ORDER BY next_fire_at "
                "LIMIT $2",
                p.now,
                p.limit,
            )
        return [_schedule(r) for r in rows]

    async def advance_schedule(self, p: AdvanceScheduleParams) -> bool:
        async with self._connection("advancing a schedule") as conn:
            status = await conn.execute(
                "UPDATE workflow_schedules SET next_fire_at = $1 WHERE tenant = $2 AND "
                "workflow = $3 AND next_fire_at = $4",
                p.next_fire_at,
                p.tenant,
                p.workflow,
                p.expected,
            )
        return bool(status == "UPDATE 1")

    async def pause_schedule(self, p: PauseScheduleParams) -> Schedule:
        async with self._tenant_connection(p.tenant, "pausing a schedule") as conn:
            r = await conn.fetchrow(
                "UPDATE workflow_schedules SET paused = $1, next_fire_at = "
                "coalesce($2, next_fire_at) WHERE tenant = $3 AND workflow = $4 RETURNING "
                "tenant, workflow, cron, timezone, catch_up, next_fire_at, paused",
                p.paused,
                p.next_fire_at,
                p.tenant,
                p.workflow,
            )
        if r is None:
            raise NotFound(f"workflow {p.workflow!r} has no schedule")
        return _schedule(r)

    # -- outbox and deliveries ---------------------------------------------------------------

    async def append_events(self, events: Sequence[OutboxEvent]) -> None:
        if events:
            async with self._connection("writing events") as conn:
                await _events(conn, events)

    async def create_subscription(self, s: Subscription) -> None:
        async with self._tenant_connection(s.tenant, "creating a subscription") as conn:
            await conn.execute(
                "INSERT INTO webhook_subscriptions VALUES ($1, $2, $3, $4, $5, $6)",
                s.id,
                s.tenant,
                s.url,
                _dumps(list(s.events)),
                s.secret,
                s.created_at,
            )

    async def list_subscriptions(self, tenant: str) -> list[Subscription]:
        async with self._tenant_connection(tenant, "listing subscriptions") as conn:
            rows = await conn.fetch(
                "SELECT * FROM webhook_subscriptions WHERE tenant = $1 ORDER BY id", tenant
            )
        return [_subscription(r) for r in rows]

    async def delete_subscription(self, tenant: str, subscription_id: str) -> None:
        async with self._tenant_connection(tenant, "deleting a subscription") as conn:
            status = await conn.execute(
                "DELETE FROM webhook_subscriptions WHERE tenant = $1 AND id = $2",
                tenant,
                subscription_id,
            )
        if status == "DELETE 0":
            raise NotFound(f"no subscription {subscription_id!r}")

    async def dispatch_outbox(self, p: DispatchOutboxParams) -> int:
        async with self._connection("dispatching events") as conn, conn.transaction():
            events = await conn.fetch(
                "SELECT id, tenant, type, data, ts FROM outbox WHERE NOT dispatched "
                "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                p.limit,
            )
            if not events:
                return 0
            tenants = sorted({e[1] for e in events})
            subs = [
                _subscription(r)
                for r in await conn.fetch(
                    "SELECT * FROM webhook_subscriptions WHERE tenant = ANY($1::text[])", tenants
                )
            ]
            rows = []
            for event_id, tenant, type_, data, ts in events:
                event = OutboxEvent(type_, tenant, orjson.loads(data), ts, event_id)
                for sub in subs:
                    if sub.tenant == tenant and sub.matches(type_):
                        rows.append(
                            (
                                new_id(),
                                tenant,
                                sub.id,
                                event_id,
                                type_,
                                _dumps(event_body(event)),
                                "pending",
                                0,
                                p.now,
                                p.now,
                            )
                        )
            if rows:
                await conn.executemany(
                    "INSERT INTO webhook_deliveries (id, tenant, subscription_id, event_id, "
                    "event_type, body, state, attempts, next_attempt_at, created_at) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    rows,
                )
            await conn.execute(
                "UPDATE outbox SET dispatched = true WHERE id = ANY($1::bigint[])",
                [e[0] for e in events],
            )
        return len(events)

    async def claim_deliveries(self, p: ClaimDeliveriesParams) -> list[Delivery]:
        async with self._connection("claiming deliveries") as conn:
            rows = await conn.fetch(CLAIM_DELIVERIES, p.now, p.lease_s, p.limit)
        return sorted((_delivery(r) for r in rows), key=lambda d: (d.next_attempt_at, d.id))

    async def record_delivery(self, p: RecordDeliveryParams) -> bool:
        async with self._connection("recording a delivery") as conn:
            status = await conn.execute(
                "UPDATE webhook_deliveries SET state = $1, attempts = attempts + 1, "
                "next_attempt_at = $2, last_status = $3, last_error = $4, delivered_at = $5 "
                "WHERE id = $6 AND state = 'pending' AND attempts = $7",
                p.state.value,
                p.next_attempt_at,
                p.status,
                p.error,
                p.now if p.state is DeliveryState.DELIVERED else None,
                p.delivery_id,
                p.attempts,
            )
        return bool(status == "UPDATE 1")

    async def delivery_backlog(self) -> DeliveryBacklog:
        async with self._connection("counting the webhook backlog") as conn:
            row = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM outbox WHERE NOT dispatched) AS outbox,"
                " (SELECT count(*) FROM webhook_deliveries WHERE state = 'pending') AS pending"
            )
        return DeliveryBacklog(outbox=int(row["outbox"]), pending=int(row["pending"]))

    async def list_deliveries(self, p: ListDeliveriesParams) -> list[Delivery]:
        state = None if p.state is None else p.state.value
        async with self._tenant_connection(p.tenant, "listing deliveries") as conn:
            rows = await conn.fetch(
                DELIVERY + " WHERE tenant = $1 AND ($2::text IS NULL OR state = $2) "
                "ORDER BY id DESC LIMIT $3",
                p.tenant,
                state,
                p.limit,
            )
        return [_delivery(r) for r in rows]

    async def redrive_delivery(self, tenant: str, delivery_id: str, now: float) -> Delivery:
        async with self._tenant_connection(tenant, "redriving a delivery") as conn:
            r = await conn.fetchrow(
                DELIVERY + " WHERE tenant = $1 AND id = $2 FOR UPDATE", tenant, delivery_id
            )
            if r is None:
                raise NotFound(f"no delivery {delivery_id!r}")
            if r[6] != "dead":
                raise Conflict(f"delivery is {r[6]}; only dead deliveries are redriven")
            r = await conn.fetchrow(
                "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, "
                f"next_attempt_at = $1, last_error = NULL WHERE id = $2 RETURNING "
                f"{DELIVERY_COLUMNS}",
                now,
                delivery_id,
            )
        return _delivery(r)


def _run_columns(runs: Sequence[Run]) -> tuple[list[Any], ...]:
    """The ``unnest`` arrays of ``INSERT_RUNS``."""
    return (
        [r.id for r in runs],
        [r.tenant for r in runs],
        [r.workflow for r in runs],
        [r.version for r in runs],
        [r.state.value for r in runs],
        [_dumps(r.to_doc()) for r in runs],
        [r.idempotency_key for r in runs],
        [r.revision for r in runs],
        [r.created_at for r in runs],
        [r.updated_at for r in runs],
        [r.finished_at for r in runs],
    )


def _save_columns(runs: Sequence[Run]) -> tuple[list[Any], ...]:
    """The ``unnest`` arrays of ``SAVE_RUNS``."""
    return (
        [r.id for r in runs],
        [r.revision for r in runs],
        [r.state.value for r in runs],
        [_dumps(r.to_doc()) for r in runs],
        [r.updated_at for r in runs],
        [r.finished_at for r in runs],
    )


async def _insert_step_jobs(
    conn: Any, changes: Sequence[RunChange], now: float
) -> list[list[Submitted]]:
    """Insert the step jobs of ``changes`` in one statement (the jobs INSERT of a submit),
    each unless its idempotency key is taken; per change, its jobs as stored."""
    planned = [
        [Job.from_spec(job_id, spec, now) for job_id, spec in zip(c.job_ids, c.jobs, strict=True)]
        for c in changes
    ]
    fresh = list({(j.tenant, j.idempotency_key or j.id): j for js in planned for j in js}.values())
    if not fresh:
        return [[] for _ in changes]
    inserted = {
        r[0]
        for r in await conn.fetch(
            q.INSERT_JOBS, *insert_jobs_args(fresh, now)
        )
    }
    existing: dict[tuple[str, str | None], Job] = {}
    lost = [j for js in planned for j in js if j.id not in inserted]
    if lost:
        rows = await conn.fetch(
            q.JOBS_BY_IDEMPOTENCY_KEY,
            [j.tenant for j in lost],
            [j.idempotency_key for j in lost],
        )
        existing = {(j.tenant, j.idempotency_key): j for j in map(row_to_job, rows)}
    out = []
    for js in planned:
        submitted = []
        for job in js:
            if job.id in inserted:
                submitted.append(Submitted(job, created=True))
                continue
            found = existing.get((job.tenant, job.idempotency_key))
            if found is None:  # the conflict was on the id, or the earlier job vanished
                raise Conflict(f"job {job.id} conflicts with a job that no longer exists")
            submitted.append(Submitted(found, created=False))
        out.append(submitted)
    return out
