-- faena PostgreSQL schema: workers bound to a tenant (issue 6).
--
-- A worker token serves its tenant's jobs only, unless the operator made it `shared` (it then
-- serves every tenant, like the local pool of `faena up`). A worker's record carries the tenant
-- it serves: NULL for a shared worker or a local pool.

ALTER TABLE worker_tokens ADD COLUMN shared boolean NOT NULL DEFAULT false;
-- Tokens the operator made before this version served every tenant: they keep doing so (an
-- upgrade does not strand the operator's fleet). Every other tenant's token is bound to it.
UPDATE worker_tokens SET shared = true WHERE tenant = 'default';
ALTER TABLE workers ADD COLUMN tenant text;
CREATE INDEX workers_tenant_idx ON workers (tenant);

-- The runnable jobs of one tenant in claim order, for placement on workers bound to it (the
-- shared queue index would scan past every other tenant's queued jobs).
CREATE INDEX jobs_queued_tenant_idx ON jobs (tenant, priority DESC, id) WHERE state = 'queued';

-- Row-level security on the registry as on every table with a tenant: under the tenant role
-- (`GET /v1/workers`) a tenant sees the workers bound to it, and the operator (`default`) the
-- shared ones too. Placement and the registry's own writes run as the owner.
ALTER TABLE workers ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON workers TO faena_tenant
    USING (tenant = current_setting('faena.tenant', true)
           OR (tenant IS NULL AND current_setting('faena.tenant', true) = 'default'))
    WITH CHECK (tenant = current_setting('faena.tenant', true));

-- A key's own bulk and health limits (requests per minute; NULL: derived or the server's).
ALTER TABLE api_keys ADD COLUMN rate_limit_bulk_per_minute integer;
ALTER TABLE api_keys ADD COLUMN rate_limit_health_per_minute integer;
