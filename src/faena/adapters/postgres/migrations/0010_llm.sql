-- faena PostgreSQL schema, version 10 (issue 8): the LLM layer. Per-tenant providers and
-- routing policies (JSON documents), budgets with their running spend (reserved and settled
-- under a row lock), and one record per completed provider call (the replay key is
-- tenant + job_id + call_index).
CREATE TABLE llm_providers (
    tenant     text COLLATE "C" NOT NULL,
    name       text COLLATE "C" NOT NULL,
    doc        text NOT NULL,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE llm_policies (
    tenant     text COLLATE "C" NOT NULL,
    name       text COLLATE "C" NOT NULL,
    doc        text NOT NULL,
    updated_at double precision NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE llm_budgets (
    tenant          text COLLATE "C" NOT NULL,
    scope           text COLLATE "C" NOT NULL,
    name            text COLLATE "C" NOT NULL,
    limit_usd       double precision NOT NULL,
    period          text NOT NULL,
    on_exhausted    text NOT NULL,
    downgrade_model text,
    spent_usd       double precision NOT NULL DEFAULT 0,
    period_start    double precision NOT NULL DEFAULT 0,
    updated_at      double precision NOT NULL,
    PRIMARY KEY (tenant, scope, name)
);

CREATE TABLE llm_calls (
    id           text COLLATE "C" PRIMARY KEY,
    tenant       text COLLATE "C" NOT NULL,
    job_id       text COLLATE "C",
    attempt      integer NOT NULL,
    call_index   integer NOT NULL,
    request_hash text NOT NULL,
    provider     text NOT NULL,
    model        text NOT NULL,
    response     text NOT NULL,
    tokens_in    integer NOT NULL,
    tokens_out   integer NOT NULL,
    cost         double precision NOT NULL,
    latency_ms   double precision NOT NULL,
    workflow     text,
    created_at   double precision NOT NULL
);

CREATE UNIQUE INDEX llm_calls_replay ON llm_calls (tenant, job_id, call_index)
    WHERE job_id IS NOT NULL;
CREATE INDEX llm_calls_tenant_time ON llm_calls (tenant, created_at);

-- Row-level security, the pattern of migration 0008 (docs/security.md).
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['llm_providers', 'llm_policies', 'llm_budgets', 'llm_calls'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I TO faena_tenant '
            'USING (tenant = current_setting(''faena.tenant'', true)) '
            'WITH CHECK (tenant = current_setting(''faena.tenant'', true))', t);
    END LOOP;
END
$$;
