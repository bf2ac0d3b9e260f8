-- How many entries each sandbox's request log holds, kept with every
-- write: retention deletes only the excess, and several servers on one
-- database agree on it.
CREATE TABLE request_log_counts (
    sandbox_id TEXT PRIMARY KEY NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    held       INTEGER NOT NULL
);
INSERT INTO request_log_counts (sandbox_id, held)
SELECT sandbox_id, COUNT(*) FROM request_logs GROUP BY sandbox_id;
