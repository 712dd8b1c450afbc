-- Artefacts (issue 9): the metadata of files jobs consume and produce; the bytes are in the
-- blob store under a key derived from the id. And the document kinds' result cache, keyed by
-- the input's sha256 and a digest of the options, per tenant.
CREATE TABLE artefacts (
    id            TEXT COLLATE "C" PRIMARY KEY NOT NULL,  -- UUIDv7: sorts by time
    tenant        TEXT COLLATE "C" NOT NULL,
    name          TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          BIGINT NOT NULL,
    sha256        TEXT NOT NULL,
    created_at    DOUBLE PRECISION NOT NULL,
    job_id        TEXT,
    expires_at    DOUBLE PRECISION
);
CREATE INDEX artefacts_tenant ON artefacts (tenant, id);
CREATE INDEX artefacts_created ON artefacts (created_at);
CREATE INDEX artefacts_expires ON artefacts (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE document_cache (
    tenant      TEXT COLLATE "C" NOT NULL,
    kind        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    options     TEXT NOT NULL,
    result      TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant, kind, sha256, options)
);
CREATE INDEX document_cache_created ON document_cache (created_at);

-- Row-level security, the pattern of migration 0008 (docs/security.md).
ALTER TABLE artefacts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON artefacts TO faena_tenant
    USING (tenant = current_setting('faena.tenant', true))
    WITH CHECK (tenant = current_setting('faena.tenant', true));
ALTER TABLE document_cache ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON document_cache TO faena_tenant
    USING (tenant = current_setting('faena.tenant', true))
    WITH CHECK (tenant = current_setting('faena.tenant', true));
