"""The WorkflowStore operations of the SQLite store: SQL, row mapping and a mixin for
``SqliteStore`` that runs writes on the writer thread and reads on the reader thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from faena.adapters import workflow_rows
from faena.adapters.sqlite import queries
from faena.adapters.sqlite.connection import transaction, translate
from faena.adapters.sqlite.rows import dump_optional_json, job_from_row, job_row
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

A = TypeVar("A")
T = TypeVar("T")

_WORKFLOW = """SELECT w.tenant, w.name, w.latest_version, w.hook_token, w.hook_secret,
    w.created_at, w.updated_at, COALESCE(s.paused, 0)
    FROM workflows w
    LEFT JOIN workflow_schedules s ON s.tenant = w.tenant AND s.workflow = w.name"""
_VERSION = "SELECT tenant, name, version, definition, created_at FROM workflow_versions"
_RUN = """SELECT id, tenant, workflow, version, state, doc, created_at, updated_at, finished_at,
    idempotency_key, revision FROM workflow_runs"""
_SCHEDULE = """SELECT tenant, workflow, cron, timezone, catch_up, next_fire_at, paused
    FROM workflow_schedules"""
_DELIVERY = """SELECT id, tenant, subscription_id, event_id, event_type, body, state, attempts,
    next_attempt_at, created_at, last_status, last_error, delivered_at FROM webhook_deliveries"""
_INSERT_EVENT = "INSERT INTO outbox (tenant, type, data, ts) VALUES (?, ?, ?, ?)"
_INSERT_RUN = """INSERT INTO workflow_runs (id, tenant, workflow, version, state, doc,
    idempotency_key, revision, created_at, updated_at, finished_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
_SAVE_RUN = """UPDATE workflow_runs SET state = ?, doc = ?, revision = revision + 1,
    updated_at = ?, finished_at = ? WHERE id = ? AND revision = ?"""
_REVISIONS = "SELECT id, revision FROM workflow_runs WHERE id IN (SELECT value FROM json_each(?))"
_JOBS_PRESENT = "SELECT id FROM jobs WHERE id IN (SELECT value FROM json_each(?))"
_STEP_JOBS = """SELECT id, state, attempts, result, error FROM jobs
    WHERE id IN (SELECT value FROM json_each(?)) AND tenant = ?"""


_SUBSCRIBED = """SELECT tenant, events FROM webhook_subscriptions
    WHERE tenant IN (SELECT value FROM json_each(?))"""


def _events(conn: sqlite3.Connection, events: Sequence[OutboxEvent]) -> None:
    """Write the events a subscription of their tenant wants (read in this transaction)."""
    if not events:
        return
    tenants = orjson.dumps(sorted({e.tenant for e in events})).decode()
    patterns: dict[str, list[str]] = {}
    for tenant, raw in conn.execute(_SUBSCRIBED, (tenants,)):
        patterns.setdefault(tenant, []).extend(orjson.loads(raw))
    wanted = wanted_events(events, patterns) if patterns else []
    if wanted:
        conn.executemany(
            _INSERT_EVENT, [(e.tenant, e.type, orjson.dumps(e.data).decode(), e.ts) for e in wanted]
        )


# -- operations (run on the connection's thread) ----------------------------------------------


def put_workflow(conn: sqlite3.Connection, p: PutWorkflowParams) -> PutWorkflowResult:
    definition = orjson.loads(orjson.dumps(p.definition))
    with transaction(conn):
        row = conn.execute(
            _WORKFLOW + " WHERE w.tenant = ? AND w.name = ?", (p.tenant, p.name)
        ).fetchone()
        info = _workflow(row) if row else None
        if info is not None:
            latest = _version(
                conn.execute(
                    _VERSION + " WHERE tenant = ? AND name = ? AND version = ?",
                    (p.tenant, p.name, info.latest_version),
                ).fetchone()
            )
            if latest.definition == definition:
                return PutWorkflowResult(info, latest, created=False)
        number = 1 if info is None else info.latest_version + 1
        conn.execute(
            "INSERT INTO workflow_versions VALUES (?, ?, ?, ?, ?)",
            (p.tenant, p.name, number, orjson.dumps(definition).decode(), p.now),
        )
        if info is None:
            conn.execute(
                "INSERT INTO workflows VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    p.tenant,
                    p.name,
                    number,
                    p.hook_token,
                    p.hook_secret,
                    int(p.has_triggers),
                    p.now,
                    p.now,
                ),
            )
        else:
            conn.execute(
                "UPDATE workflows SET latest_version = ?, has_triggers = ?, updated_at = ? "
                "WHERE tenant = ? AND name = ?",
                (number, int(p.has_triggers), p.now, p.tenant, p.name),
            )
        _put_schedule(conn, p)
        _events(
            conn,
            [
                OutboxEvent(
                    "workflow.applied", p.tenant, {"workflow": p.name, "version": number}, p.now
                )
            ],
        )
        info = _workflow(
            conn.execute(
                _WORKFLOW + " WHERE w.tenant = ? AND w.name = ?", (p.tenant, p.name)
            ).fetchone()
        )
    return PutWorkflowResult(
        info, WorkflowVersion(p.tenant, p.name, number, definition, p.now), created=True
    )


def _put_schedule(conn: sqlite3.Connection, p: PutWorkflowParams) -> None:
    s = p.schedule
    if s is None:
        conn.execute(
            "DELETE FROM workflow_schedules WHERE tenant = ? AND workflow = ?", (p.tenant, p.name)
        )
        return
    conn.execute(
        """INSERT INTO workflow_schedules VALUES (?, ?, ?, ?, ?, ?, 0)
        ON CONFLICT (tenant, workflow) DO UPDATE SET
            next_fire_at = CASE WHEN cron = excluded.cron AND timezone = excluded.timezone
                           THEN next_fire_at ELSE excluded.next_fire_at END,
            cron = excluded.cron, timezone = excluded.timezone, catch_up = excluded.catch_up""",
        (p.tenant, p.name, s.cron, s.timezone, int(s.catch_up), s.next_fire_at),
    )


def get_workflow(conn: sqlite3.Connection, key: tuple[str, str]) -> WorkflowInfo | None:
    row = conn.execute(_WORKFLOW + " WHERE w.tenant = ? AND w.name = ?", key).fetchone()
    return _workflow(row) if row else None


def get_version(conn: sqlite3.Connection, p: GetVersionParams) -> WorkflowVersion | None:
    if p.version is None:
        row = conn.execute(
            _VERSION + " WHERE tenant = ? AND name = ? ORDER BY version DESC LIMIT 1",
            (p.tenant, p.name),
        ).fetchone()
    else:
        row = conn.execute(
            _VERSION + " WHERE tenant = ? AND name = ? AND version = ?",
            (p.tenant, p.name, p.version),
        ).fetchone()
    return _version(row) if row else None


def list_workflows(conn: sqlite3.Connection, tenant: str) -> list[WorkflowInfo]:
    rows = conn.execute(_WORKFLOW + " WHERE w.tenant = ? ORDER BY w.name", (tenant,))
    return [_workflow(r) for r in rows]


def list_versions(conn: sqlite3.Connection, key: tuple[str, str]) -> list[WorkflowVersion]:
    rows = conn.execute(_VERSION + " WHERE tenant = ? AND name = ? ORDER BY version DESC", key)
    return [_version(r) for r in rows]


def find_hook(conn: sqlite3.Connection, token: str) -> WorkflowInfo | None:
    row = conn.execute(_WORKFLOW + " WHERE w.hook_token = ?", (token,)).fetchone()
    return _workflow(row) if row else None


def triggered(conn: sqlite3.Connection, _: None) -> list[WorkflowVersion]:
    rows = conn.execute(
        _VERSION + " v WHERE EXISTS (SELECT 1 FROM workflows w WHERE w.tenant = v.tenant AND "
        "w.name = v.name AND w.latest_version = v.version AND w.has_triggers = 1)"
    )
    return [_version(r) for r in rows]


def _run_values(run: Run) -> tuple[Any, ...]:
    return (
        run.id,
        run.tenant,
        run.workflow,
        run.version,
        run.state.value,
        orjson.dumps(run.to_doc()).decode(),
        run.idempotency_key,
        run.revision,
        run.created_at,
        run.updated_at,
        run.finished_at,
    )


def create_run(conn: sqlite3.Connection, p: CreateRunParams) -> CreatedRun:
    run = p.run
    with transaction(conn):
        if run.idempotency_key is not None:
            row = conn.execute(
                _RUN + " WHERE tenant = ? AND idempotency_key = ?",
                (run.tenant, run.idempotency_key),
            ).fetchone()
            if row:
                return CreatedRun(_run(row), created=False)
        conn.execute(_INSERT_RUN, _run_values(run))
        _events(conn, p.events)
    return CreatedRun(run.copy(), created=True)


def get_run(conn: sqlite3.Connection, key: tuple[str, str]) -> Run | None:
    row = conn.execute(_RUN + " WHERE tenant = ? AND id = ?", key).fetchone()
    return _run(row) if row else None


def delivery_backlog(conn: sqlite3.Connection, _: None) -> DeliveryBacklog:
    outbox, pending = conn.execute(
        "SELECT (SELECT count(*) FROM outbox WHERE dispatched = 0),"
        " (SELECT count(*) FROM webhook_deliveries WHERE state = 'pending')"
    ).fetchone()
    return DeliveryBacklog(outbox=int(outbox), pending=int(pending))


def get_runs(conn: sqlite3.Connection, key: tuple[str, list[str]]) -> list[Run]:
    sql = _RUN + " WHERE tenant = ? AND id IN (SELECT value FROM json_each(?))"
    return [_run(r) for r in conn.execute(sql, (key[0], orjson.dumps(key[1]).decode()))]


def get_step_jobs(conn: sqlite3.Connection, key: tuple[str, list[str]]) -> list[StepJob]:
    rows = conn.execute(_STEP_JOBS, (orjson.dumps(key[1]).decode(), key[0]))
    return [
        StepJob(i, JobState(s), a, None if r is None else orjson.loads(r), e)
        for i, s, a, r, e in rows
    ]


def list_runs(conn: sqlite3.Connection, p: ListRunsParams) -> RunPage:
    where, args = ["tenant = ?"], [p.tenant]
    if p.workflow is not None:
        where.append("workflow = ?")
        args.append(p.workflow)
    if p.states is not None:
        where.append(f"state IN ({','.join('?' * len(p.states))})")
        args.extend(s.value for s in p.states)
    if p.cursor is not None:
        where.append("id < ?")
        args.append(p.cursor)
    sql = _RUN + " WHERE " + " AND ".join(where) + " ORDER BY id DESC LIMIT ?"
    runs = [_run(r) for r in conn.execute(sql, (*args, p.limit + 1))]
    more = len(runs) > p.limit
    runs = runs[: p.limit]
    return RunPage(runs, runs[-1].id if more and runs else None)


def active_runs(conn: sqlite3.Connection, p: ActiveRunsParams) -> list[Run]:
    rows = conn.execute(
        _RUN + " WHERE state = 'running' AND id > ? ORDER BY id LIMIT ?", (p.after or "", p.limit)
    )
    return [_run(r) for r in rows]


def save_run(conn: sqlite3.Connection, p: SaveRunParams) -> Run | None:
    with transaction(conn):
        saved = _save_run(conn, p)
        if (
            saved is None
            and not conn.execute("SELECT 1 FROM workflow_runs WHERE id = ?", (p.run.id,)).fetchone()
        ):
            raise NotFound(f"no run {p.run.id!r}")
    return saved


def save_runs(conn: sqlite3.Connection, params: Sequence[SaveRunParams]) -> list[Run | None]:
    with transaction(conn):
        return [_save_run(conn, p) for p in params]


def _save_values(run: Run) -> tuple[Any, ...]:
    return (
        run.state.value,
        orjson.dumps(run.to_doc()).decode(),
        run.updated_at,
        run.finished_at,
        run.id,
        run.revision,
    )


def _save_run(conn: sqlite3.Connection, p: SaveRunParams) -> Run | None:
    """The compare-and-swap on ``revision``; None when it did not apply."""
    run = p.run
    cur = conn.execute(_SAVE_RUN, _save_values(run))
    if cur.rowcount == 0:
        return None
    _events(conn, p.events)
    saved = run.copy()
    saved.revision += 1
    return saved


def advance_runs(conn: sqlite3.Connection, p: AdvanceRunsParams) -> list[AdvancedRun]:
    """A handful of statements for the whole batch: the writer holds the database from
    ``BEGIN IMMEDIATE``, so revisions read first stay true until the updates."""
    changes = p.changes
    out: list[AdvancedRun | None] = [None] * len(changes)
    with transaction(conn):
        applied, same_key = _applicable(conn, changes, out)
        jobs, earlier = _insert_step_jobs(conn, [changes[i] for i in applied], p.now)
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        events: list[OutboxEvent] = []
        for n, i in enumerate(applied):
            change = changes[i]
            run = change.run
            if earlier[n]:
                run = workflow_rows.patch_job_ids(run, earlier[n])
            if change.create:
                inserts.append(_run_values(run))
                stored = replace(run)
            else:
                updates.append(_save_values(run))
                stored = replace(run, revision=run.revision + 1)
            events.extend(change.events)
            out[i] = AdvancedRun(stored, applied=True, jobs=jobs[n])
        if inserts:
            conn.executemany(_INSERT_RUN, inserts)
        if updates:
            conn.executemany(_SAVE_RUN, updates)
        _events(conn, events)
    for i, first in same_key.items():
        created = out[first]
        out[i] = AdvancedRun(created.run if created else None, applied=False)
    return [r if r is not None else AdvancedRun(None, applied=False) for r in out]


def _applicable(
    conn: sqlite3.Connection, changes: Sequence[RunChange], out: list[AdvancedRun | None]
) -> tuple[list[int], dict[int, int]]:
    """The indexes of the changes that apply (the others' outcomes are set in ``out``), and
    {index: earlier index} for creates whose key an earlier create of the batch takes."""
    saved_ids = [c.run.id for c in changes if not c.create]
    revisions: dict[str, int] = {}
    if saved_ids:
        revisions = dict(conn.execute(_REVISIONS, (orjson.dumps(saved_ids).decode(),)))
    applied: list[int] = []
    same_key: dict[int, int] = {}
    keys: dict[tuple[str, str], int] = {}
    for i, change in enumerate(changes):
        run = change.run
        if not change.create:
            if revisions.get(run.id) == run.revision:
                applied.append(i)
            else:
                out[i] = AdvancedRun(None, applied=False)
            continue
        if run.idempotency_key is not None:
            key = (run.tenant, run.idempotency_key)
            if key in keys:
                same_key[i] = keys[key]
                continue
            row = conn.execute(_RUN + " WHERE tenant = ? AND idempotency_key = ?", key).fetchone()
            if row:
                out[i] = AdvancedRun(_run(row), applied=False)
                continue
            keys[key] = i
        applied.append(i)
    return applied, same_key


def _insert_step_jobs(
    conn: sqlite3.Connection, changes: Sequence[RunChange], now: float
) -> tuple[list[list[Submitted]], list[dict[str, str]]]:
    """Insert the jobs of ``changes`` (one ``executemany``), each unless its idempotency key
    is taken; per change, its jobs and {planned id: earlier job's id} for the taken keys."""
    planned: list[tuple[int, Job]] = []
    rows = []
    for n, change in enumerate(changes):
        for job_id, spec in zip(change.job_ids, change.jobs, strict=True):
            job = Job.from_spec(job_id, spec, now)
            planned.append((n, job))
            rows.append(job_row(job, dump_optional_json(spec.payload, "payload")))
    jobs: list[list[Submitted]] = [[] for _ in changes]
    earlier: list[dict[str, str]] = [{} for _ in changes]
    if not rows:
        return jobs, earlier
    inserted = conn.executemany(queries.INSERT_JOB_UNLESS_KNOWN, rows).rowcount
    present: set[str] | None = None
    if inserted != len(rows):
        ids = [job.id for _, job in planned]
        present = {r[0] for r in conn.execute(_JOBS_PRESENT, (orjson.dumps(ids).decode(),))}
    for n, job in planned:
        if present is None or job.id in present:
            jobs[n].append(Submitted(job, created=True))
            continue
        row = conn.execute(
            queries.SELECT_JOB_BY_IDEMPOTENCY_KEY, (job.tenant, job.idempotency_key)
        ).fetchone()
        if row is None:  # the conflict was on the id, not on the key
            raise Conflict(f"job id {job.id} already exists")
        found = job_from_row(row)
        jobs[n].append(Submitted(found, created=False))
        earlier[n][job.id] = found.id
    return jobs, earlier


def get_schedule(conn: sqlite3.Connection, key: tuple[str, str]) -> Schedule | None:
    row = conn.execute(_SCHEDULE + " WHERE tenant = ? AND workflow = ?", key).fetchone()
    return _schedule(row) if row else None


def due_schedules(conn: sqlite3.Connection, p: DueSchedulesParams) -> list[Schedule]:
    rows = conn.execute(
        _SCHEDULE + " WHERE paused = 0 AND next_fire_at <= ? ORDER BY next_fire_at LIMIT ?",
        (p.now, p.limit),
    )
    return [_schedule(r) for r in rows]


def advance_schedule(conn: sqlite3.Connection, p: AdvanceScheduleParams) -> bool:
    with transaction(conn):
        cur = conn.execute(
            "UPDATE workflow_schedules SET next_fire_at = ? "
            "WHERE tenant = ? AND workflow = ? AND next_fire_at = ?",
            (p.next_fire_at, p.tenant, p.workflow, p.expected),
        )
    return cur.rowcount == 1


def pause_schedule(conn: sqlite3.Connection, p: PauseScheduleParams) -> Schedule:
    with transaction(conn):
        cur = conn.execute(
            "UPDATE workflow_schedules SET paused = ?, "
            "next_fire_at = COALESCE(?, next_fire_at) WHERE tenant = ? AND workflow = ?",
            (int(p.paused), p.next_fire_at, p.tenant, p.workflow),
        )
        if cur.rowcount == 0:
            raise NotFound(f"workflow {p.workflow!r} has no schedule")
        row = conn.execute(
            _SCHEDULE + " WHERE tenant = ? AND workflow = ?", (p.tenant, p.workflow)
        ).fetchone()
    return _schedule(row)


def append_events(conn: sqlite3.Connection, events: Sequence[OutboxEvent]) -> None:
    with transaction(conn):
        _events(conn, events)


def create_subscription(conn: sqlite3.Connection, s: Subscription) -> None:
    with transaction(conn):
        conn.execute(
            "INSERT INTO webhook_subscriptions VALUES (?, ?, ?, ?, ?, ?)",
            (s.id, s.tenant, s.url, orjson.dumps(list(s.events)).decode(), s.secret, s.created_at),
        )


def list_subscriptions(conn: sqlite3.Connection, tenant: str) -> list[Subscription]:
    rows = conn.execute(
        "SELECT * FROM webhook_subscriptions WHERE tenant = ? ORDER BY id", (tenant,)
    )
    return [_subscription(r) for r in rows]


def delete_subscription(conn: sqlite3.Connection, key: tuple[str, str]) -> None:
    with transaction(conn):
        cur = conn.execute("DELETE FROM webhook_subscriptions WHERE tenant = ? AND id = ?", key)
        if cur.rowcount == 0:
            raise NotFound(f"no subscription {key[1]!r}")


def dispatch_outbox(conn: sqlite3.Connection, p: DispatchOutboxParams) -> int:
    with transaction(conn):
        events = conn.execute(
            "SELECT id, tenant, type, data, ts FROM outbox WHERE dispatched = 0 ORDER BY id "
            "LIMIT ?",
            (p.limit,),
        ).fetchall()
        if not events:
            return 0
        subs = [_subscription(r) for r in conn.execute("SELECT * FROM webhook_subscriptions")]
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
                            orjson.dumps(event_body(event)).decode(),
                            "pending",
                            0,
                            p.now,
                            p.now,
                        )
                    )
        conn.executemany(
            "INSERT INTO webhook_deliveries (id, tenant, subscription_id, event_id, event_type, "
            "body, state, attempts, next_attempt_at, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        conn.execute(
            "UPDATE outbox SET dispatched = 1 WHERE dispatched = 0 AND id <= ?", (events[-1][0],)
        )
    return len(events)


def claim_deliveries(conn: sqlite3.Connection, p: ClaimDeliveriesParams) -> list[Delivery]:
    with transaction(conn):
        rows = conn.execute(
            _DELIVERY + " WHERE state = 'pending' AND next_attempt_at <= ? "
            "ORDER BY next_attempt_at, id LIMIT ?",
            (p.now, p.limit),
        ).fetchall()
        conn.executemany(
            "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ?",
            [(p.now + p.lease_s, r[0]) for r in rows],
        )
    return [_delivery(r) for r in rows]


def record_delivery(conn: sqlite3.Connection, p: RecordDeliveryParams) -> bool:
    with transaction(conn):
        cur = conn.execute(
            "UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1, "
            "next_attempt_at = ?, last_status = ?, last_error = ?, delivered_at = ? "
            "WHERE id = ? AND state = 'pending' AND attempts = ?",
            (
                p.state.value,
                p.next_attempt_at,
                p.status,
                p.error,
                p.now if p.state is DeliveryState.DELIVERED else None,
                p.delivery_id,
                p.attempts,
            ),
        )
    return cur.rowcount == 1


def list_deliveries(conn: sqlite3.Connection, p: ListDeliveriesParams) -> list[Delivery]:
    if p.state is None:
        rows = conn.execute(
            _DELIVERY + " WHERE tenant = ? ORDER BY id DESC LIMIT ?", (p.tenant, p.limit)
        )
    else:
        rows = conn.execute(
            _DELIVERY + " WHERE tenant = ? AND state = ? ORDER BY id DESC LIMIT ?",
            (p.tenant, p.state.value, p.limit),
        )
    return [_delivery(r) for r in rows]


def redrive_delivery(conn: sqlite3.Connection, args: tuple[str, str, float]) -> Delivery:
    tenant, delivery_id, now = args
    with transaction(conn):
        row = conn.execute(
            _DELIVERY + " WHERE tenant = ? AND id = ?", (tenant, delivery_id)
        ).fetchone()
        if row is None:
            raise NotFound(f"no delivery {delivery_id!r}")
        if row[6] != "dead":
            raise Conflict(f"delivery is {row[6]}; only dead deliveries are redriven")
        conn.execute(
            "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, "
            "next_attempt_at = ?, last_error = NULL WHERE id = ?",
            (now, delivery_id),
        )
        row = conn.execute(_DELIVERY + " WHERE id = ?", (delivery_id,)).fetchone()
    return _delivery(row)


class SqliteWorkflows:
    """The WorkflowStore methods of ``SqliteStore``."""

    # job.state events reach the outbox from triggers on jobs (migration 0013).
    job_events_in_outbox = True

    if TYPE_CHECKING:

        async def _write(self, op: Callable[[sqlite3.Connection, A], T], arg: A) -> T: ...

        async def _read(self, op: Callable[[sqlite3.Connection, A], T], arg: A) -> T: ...

    async def put_workflow(self, params: PutWorkflowParams) -> PutWorkflowResult:
        return await self._write(put_workflow, params)

    async def get_workflow(self, tenant: str, name: str) -> WorkflowInfo | None:
        return await self._read(get_workflow, (tenant, name))

    async def get_workflow_version(self, params: GetVersionParams) -> WorkflowVersion | None:
        return await self._read_inline(get_version, params)

    async def list_workflows(self, tenant: str) -> list[WorkflowInfo]:
        return await self._read(list_workflows, tenant)

    async def list_workflow_versions(self, tenant: str, name: str) -> list[WorkflowVersion]:
        return await self._read(list_versions, (tenant, name))

    async def find_hook(self, token: str) -> WorkflowInfo | None:
        return await self._read(find_hook, token)

    async def list_triggered_workflows(self) -> list[WorkflowVersion]:
        return await self._read(triggered, None)

    async def create_run(self, params: CreateRunParams) -> CreatedRun:
        return await self._write(create_run, params)

    async def get_run(self, tenant: str, run_id: str) -> Run | None:
        return await self._read_inline(get_run, (tenant, run_id))

    async def get_runs(self, tenant: str, run_ids: Sequence[str]) -> list[Run]:
        if not run_ids:
            return []
        return await self._read(get_runs, (tenant, list(run_ids)))

    async def get_step_jobs(self, tenant: str, job_ids: Sequence[str]) -> list[StepJob]:
        if not job_ids:
            return []
        return await self._read_inline(get_step_jobs, (tenant, list(job_ids)))

    async def _read_inline(self, op: Callable[[sqlite3.Connection, A], T], arg: A) -> T:
        """A small indexed read on the event loop's own connection (in WAL mode a read never
        waits for the writer, and costs less than the hop to the reader thread)."""
        conn = getattr(self, "_inline_conn", None)
        if conn is not None:
            try:
                return op(conn, arg)
            except sqlite3.OperationalError:  # busy (WAL recovery): wait on the reader thread
                pass
            except sqlite3.Error as e:
                raise translate(e) from e
        return await self._read(op, arg)

    async def list_runs(self, params: ListRunsParams) -> RunPage:
        return await self._read(list_runs, params)

    async def list_active_runs(self, params: ActiveRunsParams) -> list[Run]:
        return await self._read(active_runs, params)

    async def save_run(self, params: SaveRunParams) -> Run | None:
        return await self._write(save_run, params)

    async def save_runs(self, params: Sequence[SaveRunParams]) -> list[Run | None]:
        if not params:
            return []
        return await self._write(save_runs, params)

    async def advance_runs(self, params: AdvanceRunsParams) -> list[AdvancedRun]:
        if not params.changes:
            return []
        return await self._write(advance_runs, params)

    async def get_schedule(self, tenant: str, workflow: str) -> Schedule | None:
        return await self._read(get_schedule, (tenant, workflow))

    async def due_schedules(self, params: DueSchedulesParams) -> list[Schedule]:
        return await self._read(due_schedules, params)

    async def advance_schedule(self, params: AdvanceScheduleParams) -> bool:
        return await self._write(advance_schedule, params)

    async def pause_schedule(self, params: PauseScheduleParams) -> Schedule:
        return await self._write(pause_schedule, params)

    async def append_events(self, events: Sequence[OutboxEvent]) -> None:
        if events:
            await self._write(append_events, events)

    async def create_subscription(self, subscription: Subscription) -> None:
        await self._write(create_subscription, subscription)

    async def list_subscriptions(self, tenant: str) -> list[Subscription]:
        return await self._read(list_subscriptions, tenant)

    async def delete_subscription(self, tenant: str, subscription_id: str) -> None:
        await self._write(delete_subscription, (tenant, subscription_id))

    async def dispatch_outbox(self, params: DispatchOutboxParams) -> int:
        return await self._write(dispatch_outbox, params)

    async def claim_deliveries(self, params: ClaimDeliveriesParams) -> list[Delivery]:
        return await self._write(claim_deliveries, params)

    async def record_delivery(self, params: RecordDeliveryParams) -> bool:
        return await self._write(record_delivery, params)

    async def list_deliveries(self, params: ListDeliveriesParams) -> list[Delivery]:
        return await self._read(list_deliveries, params)

    async def delivery_backlog(self) -> DeliveryBacklog:
        return await self._read(delivery_backlog, None)

    async def redrive_delivery(self, tenant: str, delivery_id: str, now: float) -> Delivery:
        return await self._write(redrive_delivery, (tenant, delivery_id, now))
