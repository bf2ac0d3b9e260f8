-- Who published each revision: an account id, `admin` (the token) or `system`.
ALTER TABLE revisions ADD COLUMN author TEXT NOT NULL DEFAULT '';
