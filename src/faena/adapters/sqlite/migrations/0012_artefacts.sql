-- Artefacts (issue 9): the metadata of files jobs consume and produce; the bytes are in the
-- blob store under a key derived from the id. And the document kinds' result cache, keyed by
-- the input's sha256 and a digest of the options, per tenant.
CREATE TABLE artefacts (
    id            TEXT PRIMARY KEY NOT NULL,  -- UUIDv7
    tenant        TEXT NOT NULL,
    name          TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    created_at    REAL NOT NULL,
    job_id        TEXT,
    expires_at    REAL
);
CREATE INDEX artefacts_tenant ON artefacts (tenant, id);
CREATE INDEX artefacts_created ON artefacts (created_at);
CREATE INDEX artefacts_expires ON artefacts (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE document_cache (
    tenant      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    options     TEXT NOT NULL,
    result      TEXT NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (tenant, kind, sha256, options)
);
CREATE INDEX document_cache_created ON document_cache (created_at);
