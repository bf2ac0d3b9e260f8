-- A delivery being sent is claimed by the server sending it, until its
-- attempt is recorded or the claim runs out (real time): servers sharing a
-- database never send one delivery at once.
ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
ALTER TABLE deliveries ADD COLUMN claimed_until_ms INTEGER;
