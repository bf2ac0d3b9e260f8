-- Every control-plane change: who, what, when, on what, with what outcome.
CREATE TABLE audit (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms    INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL,
    status   INTEGER NOT NULL,
    request_id TEXT
);
