-- When a sandbox last answered a request (written now and then), for the
-- removal of inactive developers' sandboxes.
ALTER TABLE sandboxes ADD COLUMN last_active_at_ms INTEGER;
