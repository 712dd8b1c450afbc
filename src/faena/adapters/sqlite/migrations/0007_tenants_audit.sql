-- Issue 6: tenants as stored rows, a per-key rate limit, and the append-only audit log.

CREATE TABLE tenants (
    id           TEXT PRIMARY KEY NOT NULL,  -- the name every scoped row carries in `tenant`
    display_name TEXT,
    created_at   REAL NOT NULL
);

-- The operator's tenant always exists: bootstrap keys and un-tenanted calls belong to it.
INSERT INTO tenants (id, display_name, created_at)
VALUES ('default', 'default', CAST(strftime('%s', 'now') AS REAL));

-- Tenants already used by keys or jobs before this migration become rows too.
INSERT OR IGNORE INTO tenants (id, display_name, created_at)
SELECT DISTINCT tenant, NULL, CAST(strftime('%s', 'now') AS REAL) FROM api_keys;
INSERT OR IGNORE INTO tenants (id, display_name, created_at)
SELECT DISTINCT tenant, NULL, CAST(strftime('%s', 'now') AS REAL) FROM jobs;

ALTER TABLE api_keys ADD COLUMN rate_limit_per_minute INTEGER;

-- Append-only: faena never updates a row; only the retention purge deletes old ones.
CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY NOT NULL,  -- UUIDv7: sorts by time, the list cursor
    at          REAL NOT NULL,
    tenant      TEXT NOT NULL,
    key_prefix  TEXT,
    client_ip   TEXT,
    action      TEXT NOT NULL,
    target      TEXT,
    outcome     TEXT NOT NULL,              -- ok, denied or error
    status      INTEGER,
    request_id  TEXT,
    detail      TEXT
);

CREATE INDEX audit_log_tenant ON audit_log (tenant, id);
CREATE INDEX audit_log_at ON audit_log (at);
