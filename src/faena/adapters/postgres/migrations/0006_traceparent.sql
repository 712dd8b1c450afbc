-- The W3C trace context of the request that submitted a job (tracing on; NULL otherwise),
-- so the job's attempts join the submitter's trace.
ALTER TABLE jobs ADD COLUMN traceparent text;
