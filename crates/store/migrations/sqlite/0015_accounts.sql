-- Developer and admin accounts, their tokens (personal access tokens and
-- browser sessions, stored hashed), invitations, and who owns what.
CREATE TABLE accounts (
    id             TEXT PRIMARY KEY NOT NULL,
    email          TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'developer')),
    created_at_ms  INTEGER NOT NULL,
    disabled_at_ms INTEGER
);

CREATE TABLE access_tokens (
    id              TEXT PRIMARY KEY NOT NULL,
    account_id      TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('personal', 'session')),
    name            TEXT NOT NULL,
    prefix          TEXT NOT NULL,
    token_hash      TEXT NOT NULL UNIQUE,
    created_at_ms   INTEGER NOT NULL,
    last_used_at_ms INTEGER,
    expires_at_ms   INTEGER,
    revoked_at_ms   INTEGER
);
CREATE INDEX access_tokens_account ON access_tokens(account_id, kind);

CREATE TABLE invitations (
    code_hash      TEXT PRIMARY KEY NOT NULL,
    email          TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'developer')),
    created_by     TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    expires_at_ms  INTEGER NOT NULL,
    accepted_at_ms INTEGER
);

-- The account a sandbox belongs to; NULL: made with the admin token or by
-- the server itself, seen by admins only.
ALTER TABLE sandboxes ADD COLUMN owner TEXT;
CREATE INDEX sandboxes_owner ON sandboxes(owner);

-- The account an audit entry concerns (the caller, or the owner of the
-- sandbox the server acted on).
ALTER TABLE audit ADD COLUMN owner TEXT;
CREATE INDEX audit_owner ON audit(owner, seq);
