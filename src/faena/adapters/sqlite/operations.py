"""The SQLite store's operations: plain functions of a connection, one per port method.

:class:`~faena.adapters.sqlite.store.SqliteStore` runs each on the thread that owns the
connection (writes on the writer, reads on the reader); they never touch asyncio. Writes take
``BEGIN IMMEDIATE`` through :func:`~faena.adapters.sqlite.connection.transaction`.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson

from faena.adapters.sqlite import queries
from faena.adapters.sqlite.connection import transaction
from faena.adapters.sqlite.rows import (
    api_key_from_row,
    api_key_row,
    dump_optional_json,
    job_from_row,
    job_row,
    log_from_row,
    log_row,
)
from faena.domain.auth import ApiKey
from faena.domain.errors import Conflict, NotFound, ValidationError
from faena.domain.jobs import TRANSITIONS, Job, JobState
from faena.domain.logs import LogChunk
from faena.ports.store import (
    CancelParams,
    ClaimParams,
    CompleteParams,
    Completion,
    ExpireLeasesParams,
    ExtendLeasesParams,
    JobPage,
    ListParams,
    PurgeParams,
    ReadLogsParams,
    RetryParams,
    Stats,
    StoredLogChunk,
    SubmitParams,
    Submitted,
)
from faena.ports.telemetry import QueueDepth

_ALL_STATES = tuple(state.value for state in JobState)


def ping(conn: sqlite3.Connection, _: None) -> None:
    conn.execute("SELECT 1").fetchone()


def schema_version(conn: sqlite3.Connection, _: None) -> int:
    (version,) = conn.execute(queries.SCHEMA_VERSION).fetchone()
    return int(version)


def submit_many(conn: sqlite3.Connection, params: SubmitParams) -> list[Submitted]:
    if len(params.specs) != len(params.ids):
        raise ValidationError("submit needs exactly one id per spec")
    out: list[Submitted] = []
    plain: list[tuple[Any, ...]] = []
    keyed: list[tuple[int, tuple[Any, ...]]] = []
    for job_id, spec in zip(params.ids, params.specs, strict=True):
        job = params.new_job(job_id, spec)
        row = job_row(job, dump_optional_json(spec.payload, "payload"))
        if spec.idempotency_key is None:
            plain.append(row)
        else:
            keyed.append((len(out), row))
        out.append(Submitted(job, created=True))
    with transaction(conn):
        if plain:
            conn.executemany(queries.INSERT_JOB, plain)
        for i, row in keyed:
            if conn.execute(queries.INSERT_JOB_UNLESS_KNOWN, row).rowcount == 1:
                continue
            job_id, tenant, key = row[0], row[1], row[19]
            earlier = conn.execute(queries.SELECT_JOB_BY_IDEMPOTENCY_KEY, (tenant, key)).fetchone()
            if earlier is None:  # the conflict was on the id, not on the key
                raise Conflict(f"job id {job_id} already exists")
            out[i] = Submitted(job_from_row(earlier), created=False)
    return out


def claim(conn: sqlite3.Connection, params: ClaimParams) -> list[Job]:
    with transaction(conn):
        conn.execute(queries.PROMOTE_DUE, {"now": params.now})
        ids = _choose_claimable(conn, params)
        if not ids:
            return []
        rows = conn.execute(
            queries.CLAIM_BY_IDS,
            {
                "now": params.now,
                "worker_id": params.worker_id,
                "lease_expires_at": params.now + params.lease_s,
                "ids": orjson.dumps(ids).decode(),
            },
        ).fetchall()
    jobs = [job_from_row(row) for row in rows]
    jobs.sort(key=_claim_order)
    return jobs


def _choose_claimable(conn: sqlite3.Connection, params: ClaimParams) -> list[str]:
    """Ids of up to ``limit`` claimable jobs in claim order.

    SQL filters kinds, queues, labels and keys already at their limit; what SQL cannot see is
    the jobs this very claim takes, so the concurrency count of the window is finished here,
    and another window is read when the first one lost jobs to it.
    """
    bind: dict[str, Any] = {"window": params.limit}
    kinds = sorted(params.kinds) if params.kinds is not None else None
    queues = sorted(params.queues) if params.queues is not None else None
    bind.update({f"k{i}": kind for i, kind in enumerate(kinds or ())})
    bind.update({f"q{i}": queue for i, queue in enumerate(queues or ())})
    if params.worker_labels:
        bind["worker_labels"] = orjson.dumps(params.worker_labels).decode()
    n_kinds = None if kinds is None else len(kinds)
    n_queues = None if queues is None else len(queues)
    chosen: list[str] = []
    taken: Counter[tuple[str, str]] = Counter()
    after = False
    while True:
        sql = queries.claim_candidates(n_kinds, n_queues, bool(params.worker_labels), after)
        rows = conn.execute(sql, bind).fetchall()
        for job_id, _, tenant, key, limit, running in rows:
            if key is not None:
                if running + taken[(tenant, key)] >= limit:
                    continue
                taken[(tenant, key)] += 1
            chosen.append(job_id)
            if len(chosen) == params.limit:
                return chosen
        if len(rows) < params.limit:
            return chosen
        after = True
        bind["after_id"], bind["after_priority"] = rows[-1][0], rows[-1][1]


def _claim_order(job: Job) -> tuple[int, str]:
    return (-job.priority, job.id)


def extend_leases(conn: sqlite3.Connection, params: ExtendLeasesParams) -> list[str]:
    bind: dict[str, Any] = {
        "lease_expires_at": params.now + params.lease_s,
        "worker_id": params.worker_id,
    }
    extended: list[str] = []
    with transaction(conn):
        for ref in params.leases:
            bind["job_id"], bind["attempt"] = ref.job_id, ref.attempt
            if conn.execute(queries.EXTEND_LEASE, bind).fetchall():
                extended.append(ref.job_id)
    return extended


def complete_many(conn: sqlite3.Connection, params: CompleteParams) -> list[Job]:
    batch: list[list[Any]] = []  # the common case, one statement for all
    timed: list[dict[str, Any]] = []  # scheduled retries: their run_at is bound, one by one
    seen: set[tuple[str, int]] = set()
    position: dict[str, int] = {}  # results come back in the order of the completions
    for c in params.completions:
        _check_completion(c)
        if (c.job_id, c.attempt) in seen:
            continue  # an attempt completes once: a repeat could never apply
        seen.add((c.job_id, c.attempt))
        position.setdefault(c.job_id, len(position))
        result = dump_optional_json(c.result, "result")
        if c.state is JobState.SCHEDULED:
            timed.append(
                {
                    "job_id": c.job_id,
                    "attempt": c.attempt,
                    "state": c.state.value,
                    "result": result,
                    "error": c.error,
                    "run_at": c.run_at,
                    "finished_at": None,
                }
            )
        else:
            batch.append([c.job_id, c.attempt, c.state.value, result, c.error])
    rows: list[tuple[Any, ...]] = []
    with transaction(conn):
        if batch:
            bind = {"now": params.now, "completions": orjson.dumps(batch).decode()}
            rows.extend(conn.execute(queries.COMPLETE_MANY, bind).fetchall())
        for bind in timed:
            rows.extend(conn.execute(queries.COMPLETE, bind).fetchall())
    jobs = [job_from_row(row) for row in rows]
    jobs.sort(key=lambda job: position[job.id])
    return jobs


def _check_completion(c: Completion) -> None:
    if c.state not in TRANSITIONS[JobState.RUNNING]:
        raise ValidationError(f"a running job cannot complete as {c.state.value}")
    if c.state is JobState.SCHEDULED and c.run_at is None:
        raise ValidationError("a completion that schedules a retry needs run_at")


def cancel(conn: sqlite3.Connection, params: CancelParams) -> Job:
    bind = {"job_id": params.job_id, "tenant": params.tenant, "now": params.now}
    with transaction(conn):
        rows = conn.execute(queries.CANCEL, bind).fetchall()
        if rows:
            return job_from_row(rows[0])
        state = conn.execute(queries.SELECT_JOB_STATE, (params.job_id, params.tenant)).fetchone()
    if state is None:
        raise NotFound(f"job {params.job_id} not found")
    raise Conflict(f"job is {state[0]}; it cannot be cancelled")


def retry(conn: sqlite3.Connection, params: RetryParams) -> Job:
    bind = {"job_id": params.job_id, "tenant": params.tenant}
    with transaction(conn):
        rows = conn.execute(queries.RETRY, bind).fetchall()
        if rows:
            return job_from_row(rows[0])
        state = conn.execute(queries.SELECT_JOB_STATE, (params.job_id, params.tenant)).fetchone()
    if state is None:
        raise NotFound(f"job {params.job_id} not found")
    raise Conflict(f"job is {state[0]}; only failed or cancelled jobs can be retried")


def expire_leases(conn: sqlite3.Connection, params: ExpireLeasesParams) -> list[Job]:
    if params.limit <= 0:
        return []
    with transaction(conn):
        rows = conn.execute(
            queries.EXPIRE_LEASES, {"now": params.now, "limit": params.limit}
        ).fetchall()
    return sorted((job_from_row(row) for row in rows), key=lambda job: job.id)


def purge_finished(conn: sqlite3.Connection, params: PurgeParams) -> int:
    if params.limit <= 0:
        return 0
    with transaction(conn):
        gone = conn.execute(
            queries.PURGE_FINISHED, {"before": params.before, "limit": params.limit}
        ).fetchall()
        if gone:
            ids = orjson.dumps([job_id for job_id, _ in gone]).decode()
            conn.execute(queries.PURGE_LOGS, {"ids": ids})
    return len(gone)


def next_run_at(conn: sqlite3.Connection, _: None) -> float | None:
    (run_at,) = conn.execute(queries.NEXT_RUN_AT).fetchone()
    return None if run_at is None else float(run_at)


def get(conn: sqlite3.Connection, key: tuple[str, str]) -> Job | None:
    row = conn.execute(queries.SELECT_JOB, (key[1], key[0])).fetchone()
    return None if row is None else job_from_row(row)


def get_many(conn: sqlite3.Connection, key: tuple[str, list[str]]) -> list[Job]:
    rows = conn.execute(queries.SELECT_JOBS, (orjson.dumps(key[1]).decode(), key[0]))
    return [job_from_row(row) for row in rows]


def list_jobs(conn: sqlite3.Connection, params: ListParams) -> JobPage:
    if params.limit <= 0:
        return JobPage([], next_cursor=None)
    states = sorted(params.states) if params.states is not None else None
    bind: dict[str, Any] = {"tenant": params.tenant, "limit": params.limit + 1}
    bind.update({f"s{i}": state.value for i, state in enumerate(states or ())})
    if params.queue is not None:
        bind["queue"] = params.queue
    if params.kind is not None:
        bind["kind"] = params.kind
    if params.cursor is not None:
        bind["cursor"] = params.cursor
    labels = sorted((params.labels or {}).items())
    for i, (k, v) in enumerate(labels):
        bind[f"lk{i}"], bind[f"lv{i}"] = "$." + json.dumps(k), v
    if params.created_after is not None:
        bind["after"] = params.created_after
    if params.created_before is not None:
        bind["before"] = params.created_before
    if params.parent_id is not None:
        bind["parent_id"] = params.parent_id
    sql = queries.list_jobs(
        None if states is None else len(states),
        params.queue is not None,
        params.kind is not None,
        params.cursor is not None,
        n_labels=len(labels),
        after=params.created_after is not None,
        before=params.created_before is not None,
        parent=params.parent_id is not None,
    )
    jobs = [job_from_row(row) for row in conn.execute(sql, bind).fetchall()]
    if len(jobs) > params.limit:
        del jobs[params.limit :]
        return JobPage(jobs, next_cursor=jobs[-1].id)
    return JobPage(jobs, next_cursor=None)


def stats(conn: sqlite3.Connection, tenant: str) -> Stats:
    by_state = dict.fromkeys(_ALL_STATES, 0)
    by_queue: dict[str, dict[str, int]] = {}
    for queue, state, n in conn.execute(queries.STATS, (tenant,)).fetchall():
        by_state[state] += n
        by_queue.setdefault(queue, dict.fromkeys(_ALL_STATES, 0))[state] += n
    return Stats(by_state=by_state, by_queue=dict(sorted(by_queue.items())))


def queue_depths(conn: sqlite3.Connection, _: None) -> list[QueueDepth]:
    rows = conn.execute(queries.QUEUE_DEPTHS).fetchall()
    return [QueueDepth(queue, state, n, oldest) for queue, state, n, oldest in rows]


def append_logs(conn: sqlite3.Connection, chunks: Sequence[LogChunk]) -> None:
    rows = [log_row(chunk) for chunk in chunks]
    with transaction(conn):
        conn.executemany(queries.INSERT_LOG, rows)


def read_logs(conn: sqlite3.Connection, params: ReadLogsParams) -> list[StoredLogChunk]:
    bind = {
        "job_id": params.job_id,
        "tenant": params.tenant,
        "after": params.after,
        "limit": params.limit,
    }
    return [log_from_row(row) for row in conn.execute(queries.READ_LOGS, bind).fetchall()]


def create_api_key(conn: sqlite3.Connection, key: ApiKey) -> None:
    try:
        with transaction(conn):
            conn.execute(queries.INSERT_API_KEY, api_key_row(key))
    except sqlite3.IntegrityError:
        raise Conflict(f"API key {key.id} already exists") from None


def select_api_keys(conn: sqlite3.Connection, query: tuple[str, str]) -> list[ApiKey]:
    sql, value = query
    return [api_key_from_row(row) for row in conn.execute(sql, (value,)).fetchall()]


def revoke_api_key(conn: sqlite3.Connection, args: tuple[str, str, float]) -> ApiKey:
    tenant, key_id, now = args
    with transaction(conn):
        rows = conn.execute(
            queries.REVOKE_API_KEY, {"tenant": tenant, "key_id": key_id, "now": now}
        ).fetchall()
    if not rows:
        raise NotFound(f"API key {key_id} not found")
    return api_key_from_row(rows[0])


def count_api_keys(conn: sqlite3.Connection, _: None) -> int:
    (count,) = conn.execute(queries.COUNT_API_KEYS).fetchone()
    return int(count)
