-- faena PostgreSQL schema, version 5: retention. Finished jobs by the time they finished, so
-- purging the oldest ones reads only them (claims never touch this index: they walk the
-- partial index of queued jobs, whatever the number of finished rows).

CREATE INDEX jobs_finished_idx ON jobs (finished_at)
    WHERE state IN ('succeeded', 'failed', 'cancelled');
