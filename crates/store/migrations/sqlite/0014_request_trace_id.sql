-- The W3C trace a logged request belongs to: the caller's `traceparent`, or
-- the span the server exported for it.
ALTER TABLE request_logs ADD COLUMN trace_id TEXT;
