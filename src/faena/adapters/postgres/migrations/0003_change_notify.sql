-- faena PostgreSQL schema, version 3: every job state change and every batch of log chunks is
-- announced with NOTIFY in the transaction that makes it (delivered on commit, dropped on
-- rollback), so every server's live streams and claim loop hear about it within milliseconds.
--
-- One statement-level trigger per table: a statement that moves 500 jobs sends a handful of
-- notifications, never one per row. Payload (text, < 8000 bytes, split into several
-- notifications when longer):
--
--     faena1 <origin>                       origin: the writer's `faena.origin` setting, or -
--     <state> <attempts> <tenant> <job id>  one line per job whose state changed
--     log <last seq> <tenant> <job id>      one line per job that got log chunks
--
-- The channel is the connection's `faena.channel` setting (a faena server sets it per schema),
-- else `faena_jobs`. Tenants hold no whitespace (the domain refuses it) and at most 200
-- characters, so a line is under 900 bytes and a notification under 7000 + 900 bytes.

-- The function's plans are cached from its first call, often a statement that changed no row:
-- with nested loops allowed, the old/new join planned then would cost O(rows^2) ever after.
CREATE FUNCTION faena_notify_changes() RETURNS trigger LANGUAGE plpgsql
SET enable_nestloop = off AS $$
DECLARE
    channel text := coalesce(nullif(current_setting('faena.channel', true), ''), 'faena_jobs');
    header text := 'faena1 ' || coalesce(nullif(current_setting('faena.origin', true), ''), '-');
    entries text[];
    body text;
BEGIN
    IF TG_TABLE_NAME = 'job_logs' THEN
        entries := ARRAY(
            SELECT 'log ' || max(n.seq) || ' ' || n.tenant || ' ' || n.job_id
            FROM new_rows n GROUP BY n.tenant, n.job_id);
    ELSIF TG_OP = 'INSERT' THEN
        entries := ARRAY(
            SELECT n.state || ' ' || n.attempts || ' ' || n.tenant || ' ' || n.id
            FROM new_rows n);
    ELSE
        -- Lease renewals and other updates that keep the state are not announced.
        entries := ARRAY(
            SELECT n.state || ' ' || n.attempts || ' ' || n.tenant || ' ' || n.id
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE n.state <> o.state);
    END IF;
    IF cardinality(entries) = 0 THEN
        RETURN NULL;
    END IF;
    FOR body IN
        SELECT string_agg(e, E'\n' ORDER BY i)
        FROM (SELECT e, i, sum(octet_length(e) + 1) OVER (ORDER BY i) / 7000 AS chunk
              FROM unnest(entries) WITH ORDINALITY AS u(e, i)) c
        GROUP BY chunk
    LOOP
        PERFORM pg_notify(channel, header || E'\n' || body);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_notify_inserted AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION faena_notify_changes();

CREATE TRIGGER jobs_notify_updated AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION faena_notify_changes();

CREATE TRIGGER job_logs_notify_inserted AFTER INSERT ON job_logs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION faena_notify_changes();
