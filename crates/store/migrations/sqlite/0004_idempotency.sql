-- Answers to requests sent with an Idempotency-Key, replayed to retries.
CREATE TABLE idempotency_keys (
    sandbox_id    TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    -- SHA-256 of method, path, query and body: a retry must match it.
    fingerprint   TEXT NOT NULL,
    status        INTEGER NOT NULL,
    headers       TEXT NOT NULL,
    body          BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (sandbox_id, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys(created_at_ms);
