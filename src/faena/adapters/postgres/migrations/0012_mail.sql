-- faena on PostgreSQL: mailbox watches and what became of each message they saw (issue 9).
-- One row per (watch, uidvalidity, uid) in mail_messages: a message is handled once.

CREATE TABLE mail_watches (
    id              TEXT PRIMARY KEY NOT NULL,
    tenant          TEXT NOT NULL,
    name            TEXT NOT NULL,
    spec            TEXT NOT NULL,           -- the definition, JSON (no password: a secret name)
    created_at      DOUBLE PRECISION NOT NULL,
    uidvalidity     BIGINT,
    last_uid        BIGINT NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until     DOUBLE PRECISION NOT NULL DEFAULT 0,
    last_error      TEXT,
    last_polled_at  DOUBLE PRECISION,
    processed       BIGINT NOT NULL DEFAULT 0,
    parked          BIGINT NOT NULL DEFAULT 0,
    UNIQUE (tenant, name)
);

CREATE TABLE mail_messages (
    watch_id     TEXT NOT NULL REFERENCES mail_watches (id) ON DELETE CASCADE,
    uidvalidity  BIGINT NOT NULL,
    uid          BIGINT NOT NULL,
    tenant       TEXT NOT NULL,
    state        TEXT NOT NULL,              -- ingested | parked | skipped
    at           DOUBLE PRECISION NOT NULL,
    run_id       TEXT,
    reason       TEXT,
    message_id   TEXT,
    subject      TEXT,
    PRIMARY KEY (watch_id, uidvalidity, uid)
);

-- Row-level security (docs/security.md): tenant calls see only their tenant's rows; the
-- watcher (leases, progress, message records) runs as the owner, across tenants.
ALTER TABLE mail_watches ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON mail_watches TO faena_tenant
    USING (tenant = current_setting('faena.tenant', true))
    WITH CHECK (tenant = current_setting('faena.tenant', true));
ALTER TABLE mail_messages ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON mail_messages TO faena_tenant
    USING (tenant = current_setting('faena.tenant', true))
    WITH CHECK (tenant = current_setting('faena.tenant', true));
