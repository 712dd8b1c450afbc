-- faena on SQLite, version 2: the worker registry and worker tokens.

CREATE TABLE workers (
    id             TEXT PRIMARY KEY NOT NULL,
    kind           TEXT NOT NULL,            -- local | remote
    kinds          TEXT NOT NULL,            -- JSON array of the kinds it serves
    labels         TEXT NOT NULL,            -- JSON object
    slots          INTEGER NOT NULL,
    cpu_cores      REAL NOT NULL DEFAULT 0,
    memory_mb      INTEGER NOT NULL DEFAULT 0,
    version        TEXT NOT NULL,
    host           TEXT NOT NULL,
    server         TEXT NOT NULL,
    started_at     REAL NOT NULL,
    last_heartbeat REAL NOT NULL,
    cpu_percent    REAL NOT NULL DEFAULT 0,
    memory_percent REAL NOT NULL DEFAULT 0,
    running        INTEGER NOT NULL DEFAULT 0,
    state          TEXT NOT NULL
);

CREATE INDEX workers_heartbeat ON workers (last_heartbeat);

CREATE TABLE worker_tokens (
    id         TEXT PRIMARY KEY NOT NULL,
    tenant     TEXT NOT NULL,
    name       TEXT NOT NULL,
    prefix     TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
);

CREATE INDEX worker_tokens_prefix ON worker_tokens (prefix);
CREATE INDEX worker_tokens_tenant ON worker_tokens (tenant, created_at);
