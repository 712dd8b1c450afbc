-- faena on SQLite, version 4: retention. Finished jobs by the time they finished, so purging
-- the oldest ones reads only them; the index holds finished jobs only.

CREATE INDEX jobs_finished ON jobs (finished_at)
    WHERE state IN ('succeeded', 'failed', 'cancelled');
