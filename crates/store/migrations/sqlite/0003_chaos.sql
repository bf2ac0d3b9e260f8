-- A sandbox's chaos profile (`latency=300ms,error=5%`), applied to every
-- request that sends no X-Chaos header.
ALTER TABLE sandboxes ADD COLUMN chaos TEXT;
