"""The SQL of the SQLite store, one named constant per statement.

Written for SQLite 3.38+ (``RETURNING``, ``->>``, ``json_each``) and for one writer: the hot
statements touch only partial indexes (``jobs_ready``, ``jobs_scheduled``, ``jobs_leases``).
Parameters are named after the params dataclass fields they come from.
"""

from __future__ import annotations

from functools import lru_cache

# Order matters: the same as the fields of `Job`, so `rows.job_from_row` builds it by position.
JOB_FIELDS = (
    "id", "tenant", "kind", "queue", "state", "payload", "priority", "labels", "max_attempts",
    "attempts", "created_at", "run_at", "timeout_s", "result", "error", "worker_id",
    "started_at", "finished_at", "lease_expires_at", "idempotency_key", "concurrency_key",
    "concurrency_limit", "backoff_s", "backoff_max_s", "traceparent", "resources", "parent_id",
)  # fmt: skip
_REAL_FIELDS = frozenset(
    {"created_at", "run_at", "timeout_s", "started_at", "finished_at", "lease_expires_at",
     "backoff_s", "backoff_max_s"}
)  # fmt: skip
JOB_COLUMNS = ", ".join(JOB_FIELDS)
# RETURNING hands back the value being written, before REAL affinity turns a whole number
# into a float again: cast, so a returned job is the same as a selected one.
RETURNING_JOB = ", ".join(
    f"CAST({name} AS REAL) AS {name}" if name in _REAL_FIELDS else name for name in JOB_FIELDS
)

INSERT_JOB = f"""
INSERT INTO jobs ({JOB_COLUMNS})
VALUES ({", ".join("?" * len(JOB_FIELDS))})
"""

# An idempotent submit: nothing happens when (tenant, idempotency_key) is taken.
INSERT_JOB_UNLESS_KNOWN = INSERT_JOB + " ON CONFLICT DO NOTHING"

SELECT_JOB_BY_IDEMPOTENCY_KEY = f"""
SELECT {JOB_COLUMNS} FROM jobs WHERE tenant = ? AND idempotency_key = ?
"""

SELECT_JOB = f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ? AND tenant = ?"

# Many jobs by id (a JSON list): the workflow engine reads a batch of runs' step jobs at once.
SELECT_JOBS = (
    f"SELECT {JOB_COLUMNS} FROM jobs WHERE id IN (SELECT value FROM json_each(?)) AND tenant = ?"
)

SELECT_JOB_STATE = "SELECT state FROM jobs WHERE id = ? AND tenant = ?"

# Due scheduled jobs join the queue; run from claim, inside its transaction.
PROMOTE_DUE = """
UPDATE jobs SET state = 'queued', run_at = NULL
WHERE state = 'scheduled' AND run_at <= :now
"""

CLAIM_BY_IDS = f"""
UPDATE jobs SET
    state = 'running',
    attempts = attempts + 1,
    started_at = :now,
    worker_id = :worker_id,
    lease_expires_at = :lease_expires_at,
    run_at = NULL
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'queued'
RETURNING {RETURNING_JOB}
"""

_RUNNING_WITH_KEY = """
(SELECT count(*) FROM jobs AS r
 WHERE r.state = 'running' AND r.tenant = j.tenant AND r.concurrency_key = j.concurrency_key)
"""

_LABELS_NONE = "AND j.labels IS NULL"
# Every label the job requires is offered by the worker with the same value.
_LABELS_OFFERED = """
AND (j.labels IS NULL OR NOT EXISTS (
    SELECT 1 FROM json_each(j.labels) AS need
    WHERE need.value IS NOT (SELECT offer.value FROM json_each(:worker_labels) AS offer
                             WHERE offer.key = need.key)))
"""


@lru_cache(maxsize=256)
def claim_candidates(n_kinds: int | None, n_queues: int | None, labels: bool, after: bool) -> str:
    """Queued jobs a worker may take, in claim order, with what the concurrency check needs.

    ``n_kinds``/``n_queues``: how many ``:k<i>``/``:q<i>`` parameters filter (None: no filter);
    ``labels``: whether the worker offers labels; ``after``: continue after ``(:after_priority,
    :after_id)`` when the previous window was not enough.
    """
    where = ["j.state = 'queued'"]
    if n_kinds is not None:
        where.append(f"j.kind IN ({', '.join(f':k{i}' for i in range(n_kinds)) or 'NULL'})")
    if n_queues is not None:
        where.append(f"j.queue IN ({', '.join(f':q{i}' for i in range(n_queues)) or 'NULL'})")
    if after:
        where.append(
            "(j.priority < :after_priority OR (j.priority = :after_priority AND j.id > :after_id))"
        )
    return f"""
SELECT j.id, j.priority, j.tenant, j.concurrency_key, j.concurrency_limit,
       CASE WHEN j.concurrency_key IS NULL THEN 0 ELSE {_RUNNING_WITH_KEY} END
FROM jobs AS j INDEXED BY jobs_ready
WHERE {" AND ".join(where)}
  {_LABELS_OFFERED if labels else _LABELS_NONE}
  AND (j.concurrency_key IS NULL OR {_RUNNING_WITH_KEY} < j.concurrency_limit)
ORDER BY j.priority DESC, j.id
LIMIT :window
"""


EXTEND_LEASE = """
UPDATE jobs SET lease_expires_at = :lease_expires_at
WHERE id = :job_id AND state = 'running' AND attempts = :attempt AND worker_id = :worker_id
RETURNING id
"""

# A batch of outcomes in one statement: `:completions` is a JSON array of
# [job_id, attempt, state, result_json_text, error]. Each applies only to the attempt still
# running (the CAS); RETURNING tells exactly which did. Outcomes with a run_at go through
# COMPLETE instead, so the time is bound as a REAL and never round-trips through JSON text.
COMPLETE_MANY = f"""
UPDATE jobs SET
    state = c.state,
    result = c.result,
    error = c.error,
    run_at = NULL,
    finished_at = CASE WHEN c.state IN ('succeeded', 'failed', 'cancelled') THEN :now END,
    lease_expires_at = NULL
FROM (
    SELECT value ->> 0 AS id, value ->> 1 AS attempt, value ->> 2 AS state,
           value ->> 3 AS result, value ->> 4 AS error
    FROM json_each(:completions)
) AS c
WHERE jobs.id = c.id AND jobs.state = 'running' AND jobs.attempts = c.attempt
RETURNING {RETURNING_JOB}
"""

COMPLETE = f"""
UPDATE jobs SET
    state = :state,
    result = :result,
    error = :error,
    run_at = :run_at,
    finished_at = :finished_at,
    lease_expires_at = NULL
WHERE id = :job_id AND state = 'running' AND attempts = :attempt
RETURNING {RETURNING_JOB}
"""

CANCEL = f"""
UPDATE jobs SET state = 'cancelled', finished_at = :now, lease_expires_at = NULL, run_at = NULL
WHERE id = :job_id AND tenant = :tenant AND state IN ('queued', 'scheduled', 'running')
RETURNING {RETURNING_JOB}
"""

RETRY = f"""
UPDATE jobs SET
    state = 'queued', attempts = 0, result = NULL, error = NULL, finished_at = NULL,
    started_at = NULL, worker_id = NULL, lease_expires_at = NULL, run_at = NULL
WHERE id = :job_id AND tenant = :tenant AND state IN ('failed', 'cancelled')
RETURNING {RETURNING_JOB}
"""

EXPIRE_LEASES = f"""
UPDATE jobs SET
    state = CASE WHEN attempts < max_attempts THEN 'queued' ELSE 'failed' END,
    finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE :now END,
    error = 'lease expired (worker ' || coalesce(worker_id, 'unknown') || ' stopped heartbeating)',
    lease_expires_at = NULL
WHERE id IN (
    SELECT id FROM jobs
    WHERE state = 'running' AND lease_expires_at < :now
    ORDER BY lease_expires_at, id
    LIMIT :limit
)
RETURNING {RETURNING_JOB}
"""

NEXT_RUN_AT = "SELECT min(run_at) FROM jobs WHERE state = 'scheduled'"

# Retention: the oldest finished jobs (through the partial index `jobs_finished`), then their
# logs by `:ids`, a JSON array of job ids (ids are unique across tenants).
PURGE_FINISHED = """
DELETE FROM jobs
WHERE id IN (
    SELECT id FROM jobs INDEXED BY jobs_finished
    WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished_at < :before
    ORDER BY finished_at
    LIMIT :limit
)
RETURNING id, tenant
"""

PURGE_LOGS = """
DELETE FROM job_logs
WHERE job_id IN (SELECT value FROM json_each(:ids))
"""


def list_jobs(
    n_states: int | None,
    queue: bool,
    kind: bool,
    cursor: bool,
    *,
    n_labels: int = 0,
    after: bool = False,
    before: bool = False,
    parent: bool = False,
) -> str:
    """A newest-first page of one tenant's jobs; filters present only when asked for."""
    where = ["tenant = :tenant"]
    if parent:
        where.append("parent_id = :parent_id")
    where.extend(f"labels ->> :lk{i} = :lv{i}" for i in range(n_labels))
    if after:
        where.append("created_at >= :after")
    if before:
        where.append("created_at < :before")
    if n_states is not None:
        where.append(f"state IN ({', '.join(f':s{i}' for i in range(n_states)) or 'NULL'})")
    if queue:
        where.append("queue = :queue")
    if kind:
        where.append("kind = :kind")
    if cursor:
        where.append("id < :cursor")
    index = "jobs_parent" if parent else "jobs_tenant"  # a job's children: its own index
    return f"""
SELECT {JOB_COLUMNS} FROM jobs INDEXED BY {index}
WHERE {" AND ".join(where)}
ORDER BY id DESC
LIMIT :limit
"""


# Kept by the triggers of migration 0014 in the transaction of every change.
STATS = """
SELECT queue, state, n FROM job_counts WHERE tenant = ? AND n <> 0
"""

# For /metrics: the partial indexes of queued, scheduled and running jobs keep this cheap.
QUEUE_DEPTHS = """
SELECT queue, state, count(*), min(coalesce(run_at, created_at)) FROM jobs
WHERE state IN ('queued', 'scheduled', 'running') GROUP BY queue, state ORDER BY queue, state
"""

INSERT_LOG = """
INSERT INTO job_logs (tenant, job_id, seq, stream, data, ts, attempt)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""

READ_LOGS = """
SELECT cursor, job_id, seq, stream, data, ts, tenant, attempt FROM job_logs
WHERE job_id = :job_id AND tenant = :tenant AND cursor > :after
ORDER BY cursor
LIMIT :limit
"""

API_KEY_COLUMNS = (
    "id, tenant, name, prefix, key_hash, scopes, created_at, expires_at, revoked_at,"
    " rate_limit_per_minute, rate_limit_bulk_per_minute, rate_limit_health_per_minute"
)

INSERT_API_KEY = (
    f"INSERT INTO api_keys ({API_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

FIND_API_KEYS = f"SELECT {API_KEY_COLUMNS} FROM api_keys WHERE prefix = ? ORDER BY created_at, id"

LIST_API_KEYS = f"SELECT {API_KEY_COLUMNS} FROM api_keys WHERE tenant = ? ORDER BY created_at, id"

REVOKE_API_KEY = f"""
UPDATE api_keys SET revoked_at = coalesce(revoked_at, :now)
WHERE id = :key_id AND tenant = :tenant
RETURNING {API_KEY_COLUMNS}
"""

COUNT_API_KEYS = "SELECT count(*) FROM api_keys"

# Migrations.
CREATE_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY NOT NULL,
    applied_at REAL NOT NULL
)
"""

SCHEMA_VERSION = "SELECT coalesce(max(version), 0) FROM schema_migrations"

RECORD_MIGRATION = "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)"
