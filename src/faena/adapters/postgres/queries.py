"""The PostgreSQL dialect of the Store port: every statement the adapter runs, by name.

Written for PostgreSQL, not for portability: bulk statements over ``unnest`` arrays,
``FOR UPDATE SKIP LOCKED`` claims on a partial index, one statement per batch. JSON travels as
text arrays cast to ``jsonb`` (asyncpg would read a nested list as a multi-dimensional array).
Unqualified table names resolve through the connection's ``search_path``.
"""

from __future__ import annotations

# The column order `row_to_job` reads, by position.
JOB_COLUMNS = (
    "id, tenant, kind, queue, state, payload, priority, labels, max_attempts, attempts,"
    " created_at, run_at, timeout_s, result, error, worker_id, started_at, finished_at,"
    " lease_expires_at, idempotency_key, concurrency_key, concurrency_limit, backoff_s,"
    " backoff_max_s, traceparent, resources, parent_id"
)
_J = ", ".join(f"j.{c.strip()}" for c in JOB_COLUMNS.split(","))

# -- migrations ------------------------------------------------------------------------------

MIGRATIONS_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"
CREATE_SCHEMA = "CREATE SCHEMA IF NOT EXISTS {schema}"
CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  double precision NOT NULL
)"""
CURRENT_VERSION = "SELECT coalesce(max(version), 0) FROM schema_migrations"
RECORD_MIGRATION = """
INSERT INTO schema_migrations (version, name, applied_at)
VALUES ($1, $2, extract(epoch FROM clock_timestamp()))"""

# -- submit ----------------------------------------------------------------------------------

INSERT_JOBS = """
INSERT INTO jobs (id, tenant, kind, queue, state, payload, priority, labels, max_attempts,
                  attempts, created_at, run_at, timeout_s, idempotency_key, concurrency_key,
                  concurrency_limit, backoff_s, backoff_max_s, traceparent, resources,
                  parent_id, worker_id, started_at, lease_expires_at)
SELECT id, tenant, kind, queue, state, payload::jsonb, priority, labels::jsonb, max_attempts,
       attempts, $17, run_at, timeout_s, idempotency_key, concurrency_key,
       concurrency_limit, backoff_s, backoff_max_s, traceparent, resources::jsonb, parent_id,
       worker_id, started_at, lease_expires_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::int[], $8::text[], $9::int[], $10::float8[], $11::float8[], $12::text[],
            $13::text[], $14::int[], $15::float8[], $16::float8[], $18::text[], $19::text[],
            $20::text[], $21::int[], $22::text[], $23::float8[], $24::float8[])
     AS u(id, tenant, kind, queue, state, payload, priority, labels, max_attempts, run_at,
          timeout_s, idempotency_key, concurrency_key, concurrency_limit, backoff_s,
          backoff_max_s, traceparent, resources, parent_id, attempts, worker_id, started_at,
          lease_expires_at)
ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id"""

JOBS_BY_IDEMPOTENCY_KEY = f"""
SELECT {_J}
FROM jobs j
JOIN unnest($1::text[], $2::text[]) AS k(tenant, idempotency_key)
  ON j.tenant = k.tenant AND j.idempotency_key = k.idempotency_key"""

# -- claim -----------------------------------------------------------------------------------

# The whole claim is one function call (migration 0015, `faena_claim`): it promotes due
# scheduled jobs, locks candidates in claim order with SKIP LOCKED on the partial index of queued
# jobs, applies concurrency keys under advisory try-locks, and moves the chosen rows to `running`
# — one round trip, in the statement's own transaction.
CLAIM = f"""
SELECT {_J}
FROM faena_claim($1, $2::text[], $3::text[], $4::jsonb, $5, $6, $7, $8, $9) j"""

# Remote placement claims the jobs the scheduler chose for a worker (adapters/postgres/workers.py)
# with these, in one transaction.

# Due scheduled jobs become queued, so claims scan one partial index in claim order.
PROMOTE_DUE = """
UPDATE jobs SET state = 'queued', run_at = NULL
WHERE id IN (
    SELECT id FROM jobs
    WHERE state = 'scheduled' AND run_at <= $1
    ORDER BY run_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED)"""

# Transaction-level advisory locks per (tenant, concurrency key): while a claimer holds one, it
# alone counts and places that key's jobs, on every server. Try-locks: never wait, never deadlock.
# (`faena_claim` takes the same locks, so local and remote claims respect each other's counts.)
TRY_LOCK_CONCURRENCY_KEYS = """
SELECT t, k, pg_try_advisory_xact_lock(hashtextextended('faena.ck:' || t || ':' || k, 0))
FROM unnest($1::text[], $2::text[]) AS u(t, k)"""

COUNT_RUNNING_BY_KEY = """
SELECT j.tenant, j.concurrency_key, count(*)
FROM jobs j
JOIN unnest($1::text[], $2::text[]) AS k(tenant, concurrency_key)
  ON j.tenant = k.tenant AND j.concurrency_key = k.concurrency_key
WHERE j.state = 'running'
GROUP BY j.tenant, j.concurrency_key"""

CLAIM_JOBS = f"""
WITH claimed AS (
    UPDATE jobs j
    SET state = 'running', attempts = j.attempts + 1, worker_id = $2, started_at = $3,
        lease_expires_at = $3::float8 + $4::float8, run_at = NULL
    WHERE j.ctid = ANY($1::tid[])  -- rows this transaction locked: a TID scan, no estimates
    RETURNING {_J})
SELECT * FROM claimed j ORDER BY j.priority DESC, j.id"""

# -- leases and completions ------------------------------------------------------------------

EXTEND_LEASES = """
UPDATE jobs j
SET lease_expires_at = $4::float8 + $5::float8
FROM unnest($1::text[], $2::int[]) AS l(id, attempt)
WHERE j.id = l.id AND j.state = 'running' AND j.attempts = l.attempt AND j.worker_id = $3
RETURNING j.id"""

_COMPLETE = f"""
UPDATE jobs j
SET state = c.state,
    result = c.result::jsonb,
    error = c.error,
    finished_at = CASE WHEN c.state IN ('succeeded', 'failed', 'cancelled')
                       THEN $7::float8 ELSE NULL END,
    run_at = CASE WHEN c.state = 'scheduled' THEN c.run_at ELSE NULL END,
    lease_expires_at = NULL
FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::float8[])
     AS c(id, attempt, state, result, error, run_at)
WHERE {{by}}j.id = c.id AND j.attempts = c.attempt
  -- "(SELECT 'running')" is a plan-time unknown on purpose: with a literal, stale statistics
  -- (no running jobs) make the planner drive the join from the partial index of running jobs
  -- and rescan the whole batch per running job; this way it always goes by primary key.
  AND j.state = (SELECT 'running')
RETURNING {_J}"""

COMPLETE_JOBS = _COMPLETE.format(by="")

# A completion or a few (a pool at a steady trickle): the same, each row found by primary key
# through "id = ANY" whatever the statistics say: on a small table the join alone is planned
# as a sequential scan (0.6 ms for one row of 2,000, against 0.08 ms by key). Only for a few
# rows: the join is then a nested loop comparing every completion with every row found,
# quadratic for a batch of hundreds.
COMPLETE_FEW_JOBS = _COMPLETE.format(by="j.id = ANY($1::text[]) AND ")

EXPIRE_LEASES = f"""
WITH expired AS (
    SELECT id, lease_expires_at FROM jobs
    WHERE state = 'running' AND lease_expires_at < $1
    ORDER BY lease_expires_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED),
moved AS (
    UPDATE jobs j
    SET state = CASE WHEN j.attempts < j.max_attempts THEN 'queued' ELSE 'failed' END,
        error = 'lease expired (worker ' || coalesce(j.worker_id, 'unknown')
                || ' stopped heartbeating)',
        finished_at = CASE WHEN j.attempts < j.max_attempts THEN NULL ELSE $1 END,
        lease_expires_at = NULL
    FROM expired
    WHERE j.id = expired.id
    RETURNING {_J})
SELECT j.* FROM moved j JOIN expired e ON e.id = j.id ORDER BY e.lease_expires_at, j.id"""

# -- one job ---------------------------------------------------------------------------------

GET_JOB = f"SELECT {_J} FROM jobs j WHERE j.id = $1 AND j.tenant = $2"

GET_JOBS = f"SELECT {_J} FROM jobs j WHERE j.id = ANY($1::text[]) AND j.tenant = $2"

CANCEL_JOB = f"""
UPDATE jobs j
SET state = 'cancelled', finished_at = $3, lease_expires_at = NULL, run_at = NULL
WHERE j.id = $1 AND j.tenant = $2 AND j.state IN ('queued', 'scheduled', 'running')
RETURNING {_J}"""

RETRY_JOB = f"""
UPDATE jobs j
SET state = 'queued', attempts = 0, result = NULL, error = NULL, started_at = NULL,
    finished_at = NULL, worker_id = NULL, lease_expires_at = NULL, run_at = NULL
WHERE j.id = $1 AND j.tenant = $2 AND j.state IN ('failed', 'cancelled')
RETURNING {_J}"""

JOB_STATE = "SELECT state FROM jobs WHERE id = $1 AND tenant = $2"

NEXT_RUN_AT = "SELECT min(run_at) FROM jobs WHERE state = 'scheduled'"

# Retention: the oldest finished jobs through the partial index `jobs_finished_idx`, with their
# logs, in one statement. SKIP LOCKED: a job being retried right now is left for the next batch.
PURGE_FINISHED = """
WITH doomed AS (
    SELECT id FROM jobs
    WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished_at < $1
    ORDER BY finished_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED),
gone AS (
    DELETE FROM jobs j USING doomed d WHERE j.id = d.id
    RETURNING j.id),
logs AS (
    DELETE FROM job_logs l USING gone g WHERE l.job_id = g.id)
SELECT count(*) FROM gone"""

LIST_JOBS = f"""
SELECT {_J}
FROM jobs j
WHERE j.tenant = $1
  AND ($2::text[] IS NULL OR j.state = ANY($2::text[]))
  AND ($3::text IS NULL OR j.queue = $3)
  AND ($4::text IS NULL OR j.kind = $4)
  AND ($5::text IS NULL OR j.id < $5)
  AND ($7::jsonb IS NULL OR j.labels @> $7::jsonb)
  AND ($8::float8 IS NULL OR j.created_at >= $8)
  AND ($9::float8 IS NULL OR j.created_at < $9)
  AND ($10::text IS NULL OR j.parent_id = $10)
ORDER BY j.id DESC
LIMIT $6"""

# The counts folded so far plus the deltas not folded yet (migration 0015).
STATS = """
SELECT queue, state, sum(n)::bigint FROM (
    SELECT queue, state, n FROM job_counts WHERE tenant = $1
    UNION ALL
    SELECT queue, state, delta FROM job_count_deltas WHERE tenant = $1) c
GROUP BY queue, state
HAVING sum(n) <> 0"""

# For /metrics: the partial indexes of runnable and running jobs keep this cheap.
QUEUE_DEPTHS = """
SELECT queue, state, count(*), min(coalesce(run_at, created_at)) FROM jobs
WHERE state IN ('queued', 'scheduled', 'running') GROUP BY queue, state ORDER BY queue, state"""

# -- logs ------------------------------------------------------------------------------------

APPEND_LOGS = """
INSERT INTO job_logs (job_id, tenant, seq, stream, data, ts, attempt)
SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[],
                     $6::float8[], $7::int[])"""

READ_LOGS = """
SELECT cursor, job_id, tenant, seq, stream, data, ts, attempt
FROM job_logs
WHERE job_id = $1 AND tenant = $2 AND cursor > $3
ORDER BY cursor
LIMIT $4"""

# -- API keys --------------------------------------------------------------------------------

API_KEY_COLUMNS = (
    "id, tenant, name, prefix, key_hash, scopes, created_at, expires_at, revoked_at,"
    " rate_limit_per_minute, rate_limit_bulk_per_minute, rate_limit_health_per_minute"
)

CREATE_API_KEY = f"""
INSERT INTO api_keys ({API_KEY_COLUMNS})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"""

FIND_API_KEYS = f"SELECT {API_KEY_COLUMNS} FROM api_keys WHERE prefix = $1 ORDER BY created_at, id"

LIST_API_KEYS = f"SELECT {API_KEY_COLUMNS} FROM api_keys WHERE tenant = $1 ORDER BY created_at, id"

REVOKE_API_KEY = f"""
UPDATE api_keys SET revoked_at = coalesce(revoked_at, $3)
WHERE id = $1 AND tenant = $2
RETURNING {API_KEY_COLUMNS}"""

COUNT_API_KEYS = "SELECT count(*) FROM api_keys"
