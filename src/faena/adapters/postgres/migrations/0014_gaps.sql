-- faena on PostgreSQL: job state events in the outbox, in the transaction of the change.
--
-- A tenant with a webhook subscription wanting `job.state` (patterns `job.state`, `job.*`, `*`)
-- gets one outbox row per job state change, written by these statement-level triggers inside
-- the statement that changes the jobs: a crash can no longer lose one between the commit and
-- the relay, and with several servers each change is recorded once (not once per server that
-- heard it). Without any subscription the function returns after one probe of an (usually
-- tiny) table.

CREATE INDEX IF NOT EXISTS webhook_subscriptions_tenant ON webhook_subscriptions (tenant);

-- The tables it writes are found through the search_path of the migration (the deployment's
-- schema), pinned with the function: a session with another search_path (an operator's psql,
-- a restore) that changes jobs still reaches this schema's outbox.
CREATE FUNCTION faena_outbox_job_events() RETURNS trigger LANGUAGE plpgsql
SET enable_nestloop = off SET search_path FROM CURRENT AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhook_subscriptions) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO outbox (tenant, type, data, ts)
        SELECT n.tenant, 'job.state',
               json_build_object('job_id', n.id, 'state', n.state, 'kind', n.kind,
                                 'queue', n.queue, 'attempts', n.attempts, 'error', n.error,
                                 'run_at', n.run_at)::text,
               extract(epoch FROM clock_timestamp())
        FROM new_rows n
        WHERE n.tenant IN (
            SELECT s.tenant FROM webhook_subscriptions s,
                   json_array_elements_text(s.events::json) e(pattern)
            WHERE e.pattern IN ('*', 'job.*', 'job.state'))
        ORDER BY n.id;
    ELSE
        INSERT INTO outbox (tenant, type, data, ts)
        SELECT n.tenant, 'job.state',
               json_build_object('job_id', n.id, 'state', n.state, 'kind', n.kind,
                                 'queue', n.queue, 'attempts', n.attempts, 'error', n.error,
                                 'run_at', n.run_at)::text,
               extract(epoch FROM clock_timestamp())
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.state <> o.state AND n.tenant IN (
            SELECT s.tenant FROM webhook_subscriptions s,
                   json_array_elements_text(s.events::json) e(pattern)
            WHERE e.pattern IN ('*', 'job.*', 'job.state'))
        ORDER BY n.id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_outbox_inserted AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION faena_outbox_job_events();

CREATE TRIGGER jobs_outbox_updated AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION faena_outbox_job_events();
