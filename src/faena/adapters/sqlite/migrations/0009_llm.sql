-- The LLM layer: per-tenant providers and routing policies (JSON documents), budgets with
-- their running spend, and one record per completed provider call (the replay key is
-- tenant + job_id + call_index).
CREATE TABLE llm_providers (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    doc TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (tenant, name)
) WITHOUT ROWID;

CREATE TABLE llm_policies (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    doc TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (tenant, name)
) WITHOUT ROWID;

CREATE TABLE llm_budgets (
    tenant TEXT NOT NULL,
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    limit_usd REAL NOT NULL,
    period TEXT NOT NULL,
    on_exhausted TEXT NOT NULL,
    downgrade_model TEXT,
    spent_usd REAL NOT NULL DEFAULT 0,
    period_start REAL NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    PRIMARY KEY (tenant, scope, name)
) WITHOUT ROWID;

CREATE TABLE llm_calls (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    job_id TEXT,
    attempt INTEGER NOT NULL,
    call_index INTEGER NOT NULL,
    request_hash TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    response TEXT NOT NULL,
    tokens_in INTEGER NOT NULL,
    tokens_out INTEGER NOT NULL,
    cost REAL NOT NULL,
    latency_ms REAL NOT NULL,
    workflow TEXT,
    created_at REAL NOT NULL
);

CREATE UNIQUE INDEX llm_calls_replay ON llm_calls (tenant, job_id, call_index)
    WHERE job_id IS NOT NULL;
CREATE INDEX llm_calls_tenant_time ON llm_calls (tenant, created_at);
