-- faena on PostgreSQL:  workflows and their versions, runs, cron schedules, the outbox
-- and outbound webhook subscriptions and deliveries (issue 5). JSON is stored as TEXT (encoded by orjson, decoded by the adapter).

CREATE TABLE workflows (
    tenant          TEXT NOT NULL,
    name            TEXT NOT NULL,
    latest_version  INTEGER NOT NULL,
    hook_token      TEXT NOT NULL UNIQUE,
    hook_secret     TEXT NOT NULL,
    has_triggers    BOOLEAN NOT NULL DEFAULT false,
    created_at      DOUBLE PRECISION NOT NULL,
    updated_at      DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE workflow_versions (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    definition  TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant, name, version)
);

CREATE TABLE workflow_runs (
    id               TEXT PRIMARY KEY NOT NULL,  -- UUIDv7
    tenant           TEXT NOT NULL,
    workflow         TEXT NOT NULL,
    version          INTEGER NOT NULL,
    state            TEXT NOT NULL,
    doc              TEXT NOT NULL,  -- inputs, steps (state, jobs, outputs), trigger, error
    idempotency_key  TEXT,
    revision         INTEGER NOT NULL DEFAULT 0,
    created_at       DOUBLE PRECISION NOT NULL,
    updated_at       DOUBLE PRECISION NOT NULL,
    finished_at      DOUBLE PRECISION
);
CREATE UNIQUE INDEX workflow_runs_idempotency ON workflow_runs (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX workflow_runs_running ON workflow_runs (id) WHERE state = 'running';
CREATE INDEX workflow_runs_tenant ON workflow_runs (tenant, id);

CREATE TABLE workflow_schedules (
    tenant        TEXT NOT NULL,
    workflow      TEXT NOT NULL,
    cron          TEXT NOT NULL,
    timezone      TEXT NOT NULL,
    catch_up      BOOLEAN NOT NULL,
    next_fire_at  DOUBLE PRECISION NOT NULL,
    paused        BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (tenant, workflow)
);

CREATE TABLE outbox (
    id          BIGSERIAL PRIMARY KEY,
    tenant      TEXT NOT NULL,
    type        TEXT NOT NULL,
    data        TEXT NOT NULL,
    ts          DOUBLE PRECISION NOT NULL,
    dispatched  BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX outbox_undispatched ON outbox (id) WHERE NOT dispatched;

CREATE TABLE webhook_subscriptions (
    id          TEXT PRIMARY KEY NOT NULL,
    tenant      TEXT NOT NULL,
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,  -- JSON list of patterns
    secret      TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL
);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY NOT NULL,
    tenant           TEXT NOT NULL,
    subscription_id  TEXT NOT NULL,
    event_id         BIGINT NOT NULL,
    event_type       TEXT NOT NULL,
    body             TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  DOUBLE PRECISION NOT NULL,
    created_at       DOUBLE PRECISION NOT NULL,
    last_status      INTEGER,
    last_error       TEXT,
    delivered_at     DOUBLE PRECISION
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_tenant ON webhook_deliveries (tenant, id);
