-- How the pipeline decided each logged request (a JSON array of steps), for
-- `explain`.
ALTER TABLE request_logs ADD COLUMN trace TEXT NOT NULL DEFAULT '[]';
