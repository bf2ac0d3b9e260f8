-- The scenario a sandbox's operations answer with unless a request selects
-- another (operations without a scenario of that name answer normally).
ALTER TABLE sandboxes ADD COLUMN scenario TEXT;
