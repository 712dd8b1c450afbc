-- Issue 9 gaps (docs/notifications.md, docs/mail.md).
--
-- notification_sends: one row per completed send of a job (email.send, notify.email,
-- notify.webhook, notify.slack), written right after the server accepted it. A later attempt of
-- the same job (a lease that expired after the send, a retry) finds it and returns the recorded
-- result instead of sending again. `batch` says which send of the job it was: the kind and a
-- digest of the recipients or the endpoint.
CREATE TABLE notification_sends (
    job_id   TEXT COLLATE "C" NOT NULL,
    batch    TEXT COLLATE "C" NOT NULL,
    tenant   TEXT COLLATE "C" NOT NULL,
    kind     TEXT NOT NULL,
    attempt  INTEGER NOT NULL,
    result   TEXT NOT NULL,      -- the delivery result, JSON
    sent_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (job_id, batch)
);
CREATE INDEX notification_sends_sent ON notification_sends (sent_at);

ALTER TABLE notification_sends ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notification_sends TO faena_tenant
    USING (tenant = current_setting('faena.tenant', true))
    WITH CHECK (tenant = current_setting('faena.tenant', true));

-- An artefact stored for a known source (a mail attachment: watch, UIDVALIDITY, UID, part) is
-- stored once: a message read again after a crash gets the artefacts of its first reading.
ALTER TABLE artefacts ADD COLUMN source_key TEXT;
CREATE UNIQUE INDEX artefacts_source ON artefacts (tenant, source_key)
    WHERE source_key IS NOT NULL;

-- How a message picked its workflow (rule, llm, default), JSON.
ALTER TABLE mail_messages ADD COLUMN classification TEXT;
