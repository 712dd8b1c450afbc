-- faena PostgreSQL schema, version 1: jobs, their logs, API keys.
-- Times are float seconds since the epoch (double precision), as everywhere in faena.

CREATE TABLE jobs (
    id                 text COLLATE "C" PRIMARY KEY,  -- UUIDv7 text: sorts by creation time
    tenant             text NOT NULL,
    kind               text NOT NULL,
    queue              text NOT NULL,
    state              text NOT NULL CHECK (
        state IN ('queued', 'scheduled', 'running', 'succeeded', 'failed', 'cancelled')),
    payload            jsonb,
    priority           integer NOT NULL DEFAULT 0,
    labels             jsonb NOT NULL DEFAULT '{}',
    max_attempts       integer NOT NULL DEFAULT 1,
    attempts           integer NOT NULL DEFAULT 0,
    created_at         double precision NOT NULL,
    run_at             double precision,
    timeout_s          double precision,
    result             jsonb,
    error              text,
    worker_id          text,
    started_at         double precision,
    finished_at        double precision,
    lease_expires_at   double precision,
    idempotency_key    text,
    concurrency_key    text,
    concurrency_limit  integer NOT NULL DEFAULT 1,
    backoff_s          double precision NOT NULL DEFAULT 1.0,
    backoff_max_s      double precision NOT NULL DEFAULT 300.0
);

-- Claim order over runnable jobs. Only `queued` rows live here: due `scheduled` rows are promoted
-- to `queued` at the start of each claim, so a backlog of future retries is never scanned.
CREATE INDEX jobs_queued_idx ON jobs (priority DESC, id) WHERE state = 'queued';
-- Due scheduled jobs and `next_run_at`.
CREATE INDEX jobs_scheduled_idx ON jobs (run_at) WHERE state = 'scheduled';
-- Lease expiry and concurrency-key counting over running jobs only.
CREATE INDEX jobs_running_lease_idx ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_running_key_idx ON jobs (tenant, concurrency_key)
    WHERE state = 'running' AND concurrency_key IS NOT NULL;
-- Idempotency per tenant; partial, so jobs without a key cost nothing here.
CREATE UNIQUE INDEX jobs_idempotency_idx ON jobs (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Listing newest first per tenant, and stats.
CREATE INDEX jobs_tenant_id_idx ON jobs (tenant, id);

CREATE TABLE job_logs (
    cursor   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id   text COLLATE "C" NOT NULL,
    tenant   text NOT NULL,
    seq      integer NOT NULL,
    stream   text NOT NULL,
    data     text NOT NULL,
    ts       double precision NOT NULL,
    attempt  integer NOT NULL DEFAULT 0
);
CREATE INDEX job_logs_job_idx ON job_logs (job_id, cursor);

CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    tenant      text NOT NULL,
    name        text NOT NULL,
    prefix      text NOT NULL,
    key_hash    text NOT NULL,
    scopes      text[] NOT NULL,
    created_at  double precision NOT NULL,
    expires_at  double precision,
    revoked_at  double precision
);
CREATE INDEX api_keys_prefix_idx ON api_keys (prefix);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant, created_at);
