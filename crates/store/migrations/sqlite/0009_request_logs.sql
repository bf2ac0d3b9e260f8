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
-- One index: every query is per sandbox (pages by seq; a request id is
-- found among at most the 10,000 kept); age pruning walks seq order.
CREATE INDEX request_logs_by_sandbox ON request_logs(sandbox_id, seq);
