-- The sandbox clock: real time plus an offset, or frozen at an instant.
ALTER TABLE sandboxes ADD COLUMN clock_offset_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sandboxes ADD COLUMN clock_frozen_ms INTEGER;
