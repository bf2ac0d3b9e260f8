-- The sandbox timeline: what caused each event, job and transition
-- (`request:<request id>`, `job:<job id>`, `control:<request id>`), the
-- sandbox time of each logged request, jobs kept once run, and every move of
-- a sandbox clock.
ALTER TABLE events ADD COLUMN origin TEXT;
ALTER TABLE jobs ADD COLUMN origin TEXT;
ALTER TABLE transitions ADD COLUMN origin TEXT;
ALTER TABLE request_logs ADD COLUMN sandbox_at_ms INTEGER;
-- Sandbox time a job ran at; NULL while it waits (or once it failed).
ALTER TABLE jobs ADD COLUMN ran_at_ms INTEGER;
DROP INDEX jobs_due;
CREATE INDEX jobs_due ON jobs(sandbox_id, due_at_ms, seq) WHERE error IS NULL AND ran_at_ms IS NULL;
CREATE INDEX events_by_sandbox_time ON events(sandbox_id, created_at_ms);
CREATE INDEX transitions_by_sandbox_time ON transitions(sandbox_id, at_ms);
CREATE INDEX deliveries_by_sandbox ON deliveries(sandbox_id);
CREATE TABLE clock_changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    sandbox_id TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    -- Real time of the change.
    at_ms      INTEGER NOT NULL,
    -- Sandbox time before and after.
    from_ms    INTEGER NOT NULL,
    to_ms      INTEGER NOT NULL,
    -- In words: `advance P2D`, `freeze`, `freeze at …`, `resume`.
    change     TEXT NOT NULL,
    request_id TEXT
);
CREATE INDEX clock_changes_by_sandbox ON clock_changes(sandbox_id, from_ms);
