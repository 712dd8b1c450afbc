-- faena PostgreSQL schema, version 2: the worker registry and worker tokens.

CREATE TABLE workers (
    id              text PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('local', 'remote')),
    kinds           text[] NOT NULL,
    labels          jsonb NOT NULL DEFAULT '{}',
    slots           integer NOT NULL,
    cpu_cores       double precision NOT NULL DEFAULT 0,
    memory_mb       bigint NOT NULL DEFAULT 0,
    version         text NOT NULL,
    host            text NOT NULL,
    server          text NOT NULL,
    started_at      double precision NOT NULL,
    last_heartbeat  double precision NOT NULL,
    cpu_percent     double precision NOT NULL DEFAULT 0,
    memory_percent  double precision NOT NULL DEFAULT 0,
    running         integer NOT NULL DEFAULT 0,
    state           text NOT NULL CHECK (state IN ('connected', 'draining', 'disconnected'))
);
CREATE INDEX workers_heartbeat_idx ON workers (last_heartbeat);

CREATE TABLE worker_tokens (
    id          text PRIMARY KEY,
    tenant      text NOT NULL,
    name        text NOT NULL,
    prefix      text NOT NULL,
    token_hash  text NOT NULL,
    created_at  double precision NOT NULL,
    revoked_at  double precision
);
CREATE INDEX worker_tokens_prefix_idx ON worker_tokens (prefix);
CREATE INDEX worker_tokens_tenant_idx ON worker_tokens (tenant, created_at);
