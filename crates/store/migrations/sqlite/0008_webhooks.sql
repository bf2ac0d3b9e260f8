-- Webhook endpoints of a sandbox. `events` is a JSON array of event types
-- (["*"]: every type). During a secret rotation the previous secret keeps
-- signing until `previous_secret_expires_ms` (real time).
CREATE TABLE webhook_endpoints (
    id                         TEXT PRIMARY KEY NOT NULL,
    sandbox_id                 TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    url                        TEXT NOT NULL,
    events                     TEXT NOT NULL,
    description                TEXT,
    secret                     TEXT NOT NULL,
    previous_secret            TEXT,
    previous_secret_expires_ms INTEGER,
    -- NULL: enabled; otherwise why it is not.
    disabled_reason            TEXT,
    failures_in_row            INTEGER NOT NULL DEFAULT 0,
    created_at_ms              INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_by_sandbox ON webhook_endpoints(sandbox_id);

-- One event to one endpoint. Created in the transaction that stores the
-- event (the outbox); `next_attempt_ms` is sandbox time.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    sandbox_id      TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_id        INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    -- pending | delivered | dead
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER,
    last_status     INTEGER,
    last_error      TEXT
);
CREATE INDEX deliveries_due ON deliveries(sandbox_id, next_attempt_ms) WHERE state = 'pending';
CREATE INDEX deliveries_by_endpoint ON deliveries(endpoint_id, id);

-- Every attempt, as sent and as answered.
CREATE TABLE delivery_attempts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id     INTEGER NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    attempt         INTEGER NOT NULL,
    at_ms           INTEGER NOT NULL,
    request_headers TEXT NOT NULL,
    status          INTEGER,
    body_excerpt    TEXT,
    latency_ms      INTEGER NOT NULL,
    error           TEXT
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts(delivery_id, attempt);

-- The retry schedule deliveries of a sandbox follow (standard | compressed).
ALTER TABLE sandboxes ADD COLUMN webhook_schedule TEXT NOT NULL DEFAULT 'standard';

-- Delivery faults a developer opted into for an endpoint (JSON, NULL:
-- none): {"duplicate": 0..1, "delay_ms", "skew_seconds", "reorder"}.
ALTER TABLE webhook_endpoints ADD COLUMN faults TEXT;
