-- Issue 6: secrets, sealed with AES-256-GCM under the master key (FAENA_SECRET_KEY). The value
-- is never stored in clear: `ciphertext` holds it encrypted (with its tag), bound to
-- (tenant, name) as associated data; `key_id` is the fingerprint of the key it is under.
CREATE TABLE secrets (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    ciphertext  BLOB NOT NULL,
    nonce       BLOB NOT NULL,
    key_id      TEXT NOT NULL,
    version     INTEGER NOT NULL,  -- 1 on creation, +1 on each change of value
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (tenant, name)
) WITHOUT ROWID;

-- A rotation walks the rows not yet under the current key.
CREATE INDEX secrets_key_id ON secrets (key_id, tenant, name);
