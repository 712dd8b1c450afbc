-- faena PostgreSQL schema, version 11 (issue 8): the semantic cache. One row per (tenant,
-- namespace, normalized text): the text's hash for exact matches, its embedding (float32
-- little-endian bytes) for similarity, the cached JSON value and its expiry. ``seq`` only
-- grows, so an in-process index loads what is new with ``seq > $n``.
CREATE TABLE ai_cache (
    seq        bigserial PRIMARY KEY,
    tenant     text COLLATE "C" NOT NULL,
    namespace  text COLLATE "C" NOT NULL,
    key        text COLLATE "C" NOT NULL,
    text       text NOT NULL,
    model      text COLLATE "C" NOT NULL,
    vector     bytea NOT NULL,
    value      jsonb NOT NULL,
    created_at double precision NOT NULL,
    expires_at double precision,
    UNIQUE (tenant, namespace, key)
);
CREATE INDEX ai_cache_scan ON ai_cache (tenant, namespace, model, seq);
CREATE INDEX ai_cache_expiry ON ai_cache (expires_at) WHERE expires_at IS NOT NULL;

-- Row-level security, the pattern of migration 0008 (docs/security.md).
ALTER TABLE ai_cache ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ai_cache TO faena_tenant
    USING (tenant = current_setting('faena.tenant', true))
    WITH CHECK (tenant = current_setting('faena.tenant', true));
