-- faena SQLite schema, version 10 (issue 8): the semantic cache. One row per (tenant,
-- namespace, normalized text): the text's hash for exact matches, its embedding (float32
-- little-endian bytes) for similarity, the cached JSON value and its expiry. ``seq`` only
-- grows (AUTOINCREMENT), so an in-process index loads what is new with ``seq > ?``.
CREATE TABLE ai_cache (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant     TEXT NOT NULL,
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    text       TEXT NOT NULL,
    model      TEXT NOT NULL,
    vector     BLOB NOT NULL,
    value      TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    UNIQUE (tenant, namespace, key)
);
CREATE INDEX ai_cache_scan ON ai_cache (tenant, namespace, model, seq);
CREATE INDEX ai_cache_expiry ON ai_cache (expires_at) WHERE expires_at IS NOT NULL;
