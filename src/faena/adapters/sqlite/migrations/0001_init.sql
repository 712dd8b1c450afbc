-- faena on SQLite, version 1: jobs, their logs, API keys.
-- Times are REAL seconds since the epoch; payload, result, labels and scopes are JSON text.

CREATE TABLE jobs (
    id                TEXT PRIMARY KEY NOT NULL,  -- UUIDv7: sorts by creation time
    tenant            TEXT NOT NULL,
    kind              TEXT NOT NULL,
    queue             TEXT NOT NULL,
    state             TEXT NOT NULL,
    payload           TEXT,
    priority          INTEGER NOT NULL DEFAULT 0,
    labels            TEXT,  -- NULL when the job needs no labels: the common, fast case
    max_attempts      INTEGER NOT NULL DEFAULT 1,
    attempts          INTEGER NOT NULL DEFAULT 0,
    created_at        REAL NOT NULL,
    run_at            REAL,
    timeout_s         REAL,
    result            TEXT,
    error             TEXT,
    worker_id         TEXT,
    started_at        REAL,
    finished_at       REAL,
    lease_expires_at  REAL,
    idempotency_key   TEXT,
    concurrency_key   TEXT,
    concurrency_limit INTEGER NOT NULL DEFAULT 1,
    backoff_s         REAL NOT NULL DEFAULT 1.0,
    backoff_max_s     REAL NOT NULL DEFAULT 300.0
);

-- Claim order over queued jobs only: the index stays as small as the backlog.
CREATE INDEX jobs_ready ON jobs (priority DESC, id) WHERE state = 'queued';

-- Scheduled jobs by due time: claim promotes the due ones, next_run_at reads the first.
CREATE INDEX jobs_scheduled ON jobs (run_at) WHERE state = 'scheduled';

-- Running jobs by lease end, for expire_leases.
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'running';

-- Running jobs per concurrency key, for the concurrency limit.
CREATE INDEX jobs_running_keys ON jobs (tenant, concurrency_key)
    WHERE state = 'running' AND concurrency_key IS NOT NULL;

CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Newest-first listing per tenant; (queue, state) makes stats a covering scan.
CREATE INDEX jobs_tenant ON jobs (tenant, id);
CREATE INDEX jobs_tenant_stats ON jobs (tenant, queue, state);

CREATE TABLE job_logs (
    cursor  INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant  TEXT NOT NULL,
    job_id  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    stream  TEXT NOT NULL,
    data    TEXT NOT NULL,
    ts      REAL NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX job_logs_job ON job_logs (job_id, cursor);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY NOT NULL,
    tenant     TEXT NOT NULL,
    name       TEXT NOT NULL,
    prefix     TEXT NOT NULL,
    key_hash   TEXT NOT NULL,
    scopes     TEXT NOT NULL,  -- JSON array of strings
    created_at REAL NOT NULL,
    expires_at REAL,
    revoked_at REAL
);

CREATE INDEX api_keys_prefix ON api_keys (prefix);
CREATE INDEX api_keys_tenant ON api_keys (tenant, created_at);
