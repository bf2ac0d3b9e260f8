-- Every request a sandbox answered, redacted, newest last. Headers are JSON
-- objects; bodies are capped text.
CREATE TABLE request_logs (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    sandbox_id       TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    request_id       TEXT NOT NULL,
    at_ms            INTEGER NOT NULL,
    method           TEXT NOT NULL,
    path             TEXT NOT NULL,
    query            TEXT,
    operation        TEXT,
    status           INTEGER NOT NULL,
    latency_us       INTEGER NOT NULL,
    scenario         TEXT,
    chaos            TEXT,
    replayed         INTEGER NOT NULL,
    request_headers  TEXT NOT NULL,
    request_body     TEXT NOT NULL,
    response_headers TEXT NOT NULL,
    response_body    TEXT NOT NULL
);
CREATE INDEX request_logs_by_sandbox ON request_logs(sandbox_id, seq);
CREATE INDEX request_logs_by_id ON request_logs(sandbox_id, request_id);
CREATE INDEX request_logs_age ON request_logs(at_ms);
