-- Who called from where, what a change created, and why a change failed.
ALTER TABLE audit ADD COLUMN client TEXT;
ALTER TABLE audit ADD COLUMN user_agent TEXT;
ALTER TABLE audit ADD COLUMN resource TEXT;
ALTER TABLE audit ADD COLUMN detail TEXT;
