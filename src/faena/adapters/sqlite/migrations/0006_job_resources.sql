-- What a job declares it needs ({"cpu": 1, "memory_mb": 512}, JSON; NULL: nothing said), for
-- remote placement (issue 4).
ALTER TABLE jobs ADD COLUMN resources TEXT;
