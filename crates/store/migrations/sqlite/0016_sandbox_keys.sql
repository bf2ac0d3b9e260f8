-- A sandbox's API keys: secret, restricted (read-only or some operations)
-- and publishable; stored as SHA-256 digests. A rolled key keeps working
-- until its expiry. Each existing sandbox's key becomes its first.
CREATE TABLE sandbox_keys (
    id              TEXT PRIMARY KEY NOT NULL,
    sandbox_id      TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('secret', 'restricted', 'publishable')),
    name            TEXT,
    key_hash        TEXT NOT NULL UNIQUE,
    redacted        TEXT NOT NULL,
    permissions     TEXT NOT NULL DEFAULT '{}',
    created_at_ms   INTEGER NOT NULL,
    last_used_at_ms INTEGER,
    expires_at_ms   INTEGER,
    revoked_at_ms   INTEGER
);
CREATE INDEX sandbox_keys_sandbox ON sandbox_keys(sandbox_id);

INSERT INTO sandbox_keys (id, sandbox_id, kind, name, key_hash, redacted, created_at_ms)
SELECT 'key_' || substr(id, 5), id, 'secret', 'default', key_hash, 'sk_test_…', created_at_ms
FROM sandboxes;
