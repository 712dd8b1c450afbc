-- faena on SQLite: mailbox watches and what became of each message they saw (issue 9).
-- One row per (watch, uidvalidity, uid) in mail_messages: a message is handled once.

CREATE TABLE mail_watches (
    id              TEXT PRIMARY KEY NOT NULL,
    tenant          TEXT NOT NULL,
    name            TEXT NOT NULL,
    spec            TEXT NOT NULL,           -- the definition, JSON (no password: a secret name)
    created_at      REAL NOT NULL,
    uidvalidity     INTEGER,
    last_uid        INTEGER NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until     REAL NOT NULL DEFAULT 0,
    last_error      TEXT,
    last_polled_at  REAL,
    processed       INTEGER NOT NULL DEFAULT 0,
    parked          INTEGER NOT NULL DEFAULT 0,
    UNIQUE (tenant, name)
);

CREATE TABLE mail_messages (
    watch_id     TEXT NOT NULL REFERENCES mail_watches (id) ON DELETE CASCADE,
    uidvalidity  INTEGER NOT NULL,
    uid          INTEGER NOT NULL,
    tenant       TEXT NOT NULL,
    state        TEXT NOT NULL,              -- ingested | parked | skipped
    at           REAL NOT NULL,
    run_id       TEXT,
    reason       TEXT,
    message_id   TEXT,
    subject      TEXT,
    PRIMARY KEY (watch_id, uidvalidity, uid)
);
