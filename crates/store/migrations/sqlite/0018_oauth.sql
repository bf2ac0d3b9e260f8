-- A sandbox's OAuth 2 / OpenID Connect test provider: its signing keys
-- (the private key sealed, see sealed.rs), registered clients (secrets as
-- SHA-256 digests), test users, and refresh tokens (digests; one family per
-- grant, so a reused token revokes the family).
CREATE TABLE oauth_keys (
    sandbox_id    TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    kid           TEXT NOT NULL,
    private_key   TEXT NOT NULL,
    public_jwk    TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    retired_at_ms INTEGER,
    PRIMARY KEY (sandbox_id, kid)
);

CREATE TABLE oauth_clients (
    id            TEXT PRIMARY KEY NOT NULL,
    sandbox_id    TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    secret_hash   TEXT,
    redirect_uris TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX oauth_clients_sandbox ON oauth_clients(sandbox_id);

CREATE TABLE oauth_users (
    sandbox_id    TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    sub           TEXT NOT NULL,
    claims        TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (sandbox_id, sub)
);

CREATE TABLE oauth_refresh_tokens (
    token_hash    TEXT PRIMARY KEY NOT NULL,
    sandbox_id    TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    client_id     TEXT NOT NULL,
    sub           TEXT,
    scope         TEXT NOT NULL,
    family        TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    used_at_ms    INTEGER
);
CREATE INDEX oauth_refresh_tokens_family ON oauth_refresh_tokens(family);
