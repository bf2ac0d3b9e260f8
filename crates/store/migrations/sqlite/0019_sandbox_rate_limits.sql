-- A sandbox's own rate limits (JSON, as project.yaml's `rate_limits`),
-- replacing its project's; NULL: the project's.
ALTER TABLE sandboxes ADD COLUMN rate_limits TEXT;
