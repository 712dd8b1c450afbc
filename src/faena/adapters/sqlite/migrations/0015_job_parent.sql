-- faena on SQLite: a job's parent (issue 8): the agent job whose tool call it is. NULL for a
-- job nobody spawned. `GET /v1/jobs?parent_id=` lists a job's children newest first.

ALTER TABLE jobs ADD COLUMN parent_id TEXT;
CREATE INDEX jobs_parent ON jobs (tenant, parent_id, id) WHERE parent_id IS NOT NULL;
