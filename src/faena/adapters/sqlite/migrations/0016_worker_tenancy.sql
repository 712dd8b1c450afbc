-- faena on SQLite: workers bound to a tenant (issue 6).
--
-- A worker token serves its tenant's jobs only, unless the operator made it `shared` (it then
-- serves every tenant, like the local pool of `faena up`). A worker's record carries the tenant
-- it serves: NULL for a shared worker or a local pool.

ALTER TABLE worker_tokens ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;
-- Tokens the operator made before this version served every tenant: they keep doing so (an
-- upgrade does not strand the operator's fleet). Every other tenant's token is bound to it.
UPDATE worker_tokens SET shared = 1 WHERE tenant = 'default';
ALTER TABLE workers ADD COLUMN tenant TEXT;

-- The runnable jobs of one tenant in claim order, for placement on workers bound to it (the
-- shared queue index would scan past every other tenant's queued jobs).
CREATE INDEX jobs_ready_tenant ON jobs (tenant, priority DESC, id) WHERE state = 'queued';

-- A key's own bulk and health limits (requests per minute; NULL: derived or the server's).
ALTER TABLE api_keys ADD COLUMN rate_limit_bulk_per_minute INTEGER;
ALTER TABLE api_keys ADD COLUMN rate_limit_health_per_minute INTEGER;
