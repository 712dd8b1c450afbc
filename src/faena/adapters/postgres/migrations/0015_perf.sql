-- reserved for the perf change; replaced by its schema
SELECT 1;
