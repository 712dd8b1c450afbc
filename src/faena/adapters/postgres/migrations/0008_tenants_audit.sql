-- faena PostgreSQL schema, version 8 (issue 6): tenants as rows, a per-key rate limit, the
-- append-only audit log, and row-level security on every table with a `tenant` column.

CREATE TABLE tenants (
    id           text COLLATE "C" PRIMARY KEY,  -- the name scoped rows carry in `tenant`
    display_name text,
    created_at   double precision NOT NULL
);

-- The operator's tenant always exists; tenants already used by keys or jobs become rows too.
INSERT INTO tenants (id, display_name, created_at)
VALUES ('default', 'default', extract(epoch FROM now()));
INSERT INTO tenants (id, created_at)
SELECT DISTINCT tenant, extract(epoch FROM now()) FROM api_keys
ON CONFLICT (id) DO NOTHING;
INSERT INTO tenants (id, created_at)
SELECT DISTINCT tenant, extract(epoch FROM now()) FROM jobs
ON CONFLICT (id) DO NOTHING;

ALTER TABLE api_keys ADD COLUMN rate_limit_per_minute integer;

-- Append-only: faena never updates a row; only the retention purge deletes old ones.
CREATE TABLE audit_log (
    id          text COLLATE "C" PRIMARY KEY,  -- UUIDv7: sorts by time, the list cursor
    at          double precision NOT NULL,
    tenant      text NOT NULL,
    key_prefix  text,
    client_ip   text,
    action      text NOT NULL,
    target      text,
    outcome     text NOT NULL CHECK (outcome IN ('ok', 'denied', 'error')),
    status      integer,
    request_id  text,
    detail      text
);

CREATE INDEX audit_log_tenant_idx ON audit_log (tenant, id);
CREATE INDEX audit_log_at_idx ON audit_log (at);

-- Row-level security: the second line of defence behind the `WHERE tenant = $1` every query
-- has. API reads and non-hot writes run in a transaction that does
--     SET LOCAL ROLE faena_tenant; SELECT set_config('faena.tenant', <tenant>, true)
-- and the policies below let that role see and write only that tenant's rows. The owner (the
-- role that ran this migration) is not subject to them: system work (claims, sweeps,
-- retention, migrations) runs as the owner. See docs/security.md for the pattern to copy.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'faena_tenant') THEN
        BEGIN
            CREATE ROLE faena_tenant NOLOGIN NOINHERIT;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- another schema's migration created it a moment ago
        END;
    END IF;
    -- The owner switches to the role per transaction, so it must be a member.
    IF NOT pg_has_role(current_user, 'faena_tenant', 'MEMBER') THEN
        EXECUTE format('GRANT faena_tenant TO %I', current_user);
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO faena_tenant', current_schema());
    EXECUTE format(
        'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO faena_tenant',
        current_schema());
    EXECUTE format(
        'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO faena_tenant', current_schema());
    -- Tables and sequences later migrations create get the same grants (they still need their
    -- own policy: without one the role sees no row of them).
    EXECUTE format(
        'ALTER DEFAULT PRIVILEGES IN SCHEMA %I '
        'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO faena_tenant', current_schema());
    EXECUTE format(
        'ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO faena_tenant',
        current_schema());
END
$$;

-- The audit log is append-only for the role as well: no UPDATE or DELETE.
REVOKE UPDATE, DELETE ON audit_log FROM faena_tenant;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'jobs', 'job_logs', 'api_keys', 'worker_tokens', 'workflows', 'workflow_versions',
        'workflow_runs', 'workflow_schedules', 'outbox', 'webhook_subscriptions',
        'webhook_deliveries', 'audit_log'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I TO faena_tenant '
            'USING (tenant = current_setting(''faena.tenant'', true)) '
            'WITH CHECK (tenant = current_setting(''faena.tenant'', true))', t);
    END LOOP;
END
$$;

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants TO faena_tenant
    USING (id = current_setting('faena.tenant', true))
    WITH CHECK (id = current_setting('faena.tenant', true));
