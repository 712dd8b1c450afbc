-- faena on SQLite, version 14: job counts kept as the jobs change, so `GET /v1/stats` (polled
-- by dashboards and scripts) reads a handful of rows instead of counting the whole table. One
-- writer: the counters are updated in the transaction of the change, by row triggers, without
-- contention.

CREATE TABLE job_counts (
    tenant  TEXT NOT NULL,
    queue   TEXT NOT NULL,
    state   TEXT NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (tenant, queue, state)
) WITHOUT ROWID;

INSERT INTO job_counts (tenant, queue, state, n)
SELECT tenant, queue, state, count(*) FROM jobs GROUP BY tenant, queue, state;

CREATE TRIGGER jobs_count_inserted AFTER INSERT ON jobs
BEGIN
    INSERT INTO job_counts (tenant, queue, state, n) VALUES (NEW.tenant, NEW.queue, NEW.state, 1)
    ON CONFLICT (tenant, queue, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER jobs_count_updated AFTER UPDATE OF state, queue, tenant ON jobs
WHEN OLD.state <> NEW.state OR OLD.queue <> NEW.queue OR OLD.tenant <> NEW.tenant
BEGIN
    UPDATE job_counts SET n = n - 1
    WHERE tenant = OLD.tenant AND queue = OLD.queue AND state = OLD.state;
    INSERT INTO job_counts (tenant, queue, state, n) VALUES (NEW.tenant, NEW.queue, NEW.state, 1)
    ON CONFLICT (tenant, queue, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER jobs_count_deleted AFTER DELETE ON jobs
BEGIN
    UPDATE job_counts SET n = n - 1
    WHERE tenant = OLD.tenant AND queue = OLD.queue AND state = OLD.state;
END;
