-- Jobs waiting on a sandbox clock (sandbox time, Unix ms), run in
-- (due_at_ms, seq) order. Done jobs are deleted; failed ones stay, with why.
CREATE TABLE jobs (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    sandbox_id      TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    id              TEXT NOT NULL,
    due_at_ms       INTEGER NOT NULL,
    -- What it does (JSON: {"kind": "script", "name": …} and others).
    action          TEXT NOT NULL,
    payload         TEXT NOT NULL,
    scheduled_at_ms INTEGER NOT NULL,
    error           TEXT,
    UNIQUE (sandbox_id, id)
);
CREATE INDEX jobs_due ON jobs(sandbox_id, due_at_ms, seq) WHERE error IS NULL;

-- Every lifecycle state change of a record, with its sandbox time and cause.
CREATE TABLE transitions (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    sandbox_id  TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    collection  TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    at_ms       INTEGER NOT NULL,
    cause       TEXT NOT NULL
);
CREATE INDEX transitions_by_record ON transitions(sandbox_id, collection, resource_id, seq);

-- Sandbox time the fixtures were seeded at (creation or the last reset):
-- relative fixture dates (`now - P3D`) resolve against it.
ALTER TABLE sandboxes ADD COLUMN seeded_at_ms INTEGER;
