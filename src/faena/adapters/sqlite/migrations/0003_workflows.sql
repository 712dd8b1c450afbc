-- faena on SQLite:  workflows and their versions, runs, cron schedules, the outbox
-- and outbound webhook subscriptions and deliveries (issue 5). JSON is stored as TEXT.

CREATE TABLE workflows (
    tenant          TEXT NOT NULL,
    name            TEXT NOT NULL,
    latest_version  INTEGER NOT NULL,
    hook_token      TEXT NOT NULL UNIQUE,
    hook_secret     TEXT NOT NULL,
    has_triggers    INTEGER NOT NULL DEFAULT 0,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE workflow_versions (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    definition  TEXT NOT NULL,
    created_at  REAL NOT NULL,
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
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL,
    finished_at      REAL
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
    catch_up      INTEGER NOT NULL,
    next_fire_at  REAL NOT NULL,
    paused        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, workflow)
);

CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant      TEXT NOT NULL,
    type        TEXT NOT NULL,
    data        TEXT NOT NULL,
    ts          REAL NOT NULL,
    dispatched  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_undispatched ON outbox (id) WHERE dispatched = 0;

CREATE TABLE webhook_subscriptions (
    id          TEXT PRIMARY KEY NOT NULL,
    tenant      TEXT NOT NULL,
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,  -- JSON list of patterns
    secret      TEXT NOT NULL,
    created_at  REAL NOT NULL
);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY NOT NULL,
    tenant           TEXT NOT NULL,
    subscription_id  TEXT NOT NULL,
    event_id         INTEGER NOT NULL,
    event_type       TEXT NOT NULL,
    body             TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL NOT NULL,
    created_at       REAL NOT NULL,
    last_status      INTEGER,
    last_error       TEXT,
    delivered_at     REAL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_tenant ON webhook_deliveries (tenant, id);
