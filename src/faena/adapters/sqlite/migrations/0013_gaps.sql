-- faena on SQLite: job state events in the outbox, in the transaction of the change.
--
-- A tenant with a webhook subscription wanting `job.state` (patterns `job.state`, `job.*`, `*`)
-- gets one outbox row per job state change, written by these triggers inside the statement
-- that changes the job: a crash can no longer lose one between the commit and the relay. For
-- every other tenant the WHEN clause is one index probe of an (usually empty) table.

CREATE INDEX IF NOT EXISTS webhook_subscriptions_tenant ON webhook_subscriptions (tenant);

CREATE TRIGGER jobs_outbox_inserted AFTER INSERT ON jobs
WHEN EXISTS (
    SELECT 1 FROM webhook_subscriptions s, json_each(s.events) e
    WHERE s.tenant = NEW.tenant AND e.value IN ('*', 'job.*', 'job.state'))
BEGIN
    INSERT INTO outbox (tenant, type, data, ts) VALUES (
        NEW.tenant, 'job.state',
        json_object('job_id', NEW.id, 'state', NEW.state, 'kind', NEW.kind, 'queue', NEW.queue,
                    'attempts', NEW.attempts, 'error', NEW.error, 'run_at', NEW.run_at),
        (julianday('now') - 2440587.5) * 86400.0);
END;

CREATE TRIGGER jobs_outbox_updated AFTER UPDATE OF state ON jobs
WHEN OLD.state <> NEW.state AND EXISTS (
    SELECT 1 FROM webhook_subscriptions s, json_each(s.events) e
    WHERE s.tenant = NEW.tenant AND e.value IN ('*', 'job.*', 'job.state'))
BEGIN
    INSERT INTO outbox (tenant, type, data, ts) VALUES (
        NEW.tenant, 'job.state',
        json_object('job_id', NEW.id, 'state', NEW.state, 'kind', NEW.kind, 'queue', NEW.queue,
                    'attempts', NEW.attempts, 'error', NEW.error, 'run_at', NEW.run_at),
        (julianday('now') - 2440587.5) * 86400.0);
END;
