-- faena PostgreSQL schema, version 9 (issue 6): secrets, sealed with AES-256-GCM under the
-- master key (FAENA_SECRET_KEY). The value is never stored in clear: `ciphertext` holds it
-- encrypted (with its tag), bound to (tenant, name) as associated data; `key_id` is the
-- fingerprint of the key it is under.
CREATE TABLE secrets (
    tenant      text COLLATE "C" NOT NULL,
    name        text COLLATE "C" NOT NULL,
    ciphertext  bytea NOT NULL,
    nonce       bytea NOT NULL,
    key_id      text NOT NULL,
    version     integer NOT NULL,  -- 1 on creation, +1 on each change of value
    created_at  double precision NOT NULL,
    updated_at  double precision NOT NULL,
    PRIMARY KEY (tenant, name)
);

-- A rotation walks the rows not yet under the current key.
CREATE INDEX secrets_key_id_idx ON secrets (key_id, tenant, name);

-- Row-level security, as every tenant table (docs/security.md): the faena_tenant role sees
-- and writes only the rows of the tenant its transaction set.
ALTER TABLE secrets ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON secrets TO faena_tenant
    USING (tenant = current_setting('faena.tenant', true))
    WITH CHECK (tenant = current_setting('faena.tenant', true));
