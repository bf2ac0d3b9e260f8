CREATE TABLE projects (
    name            TEXT PRIMARY KEY NOT NULL,
    latest_revision INTEGER NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL
);

CREATE TABLE revisions (
    project       TEXT NOT NULL REFERENCES projects(name) ON DELETE CASCADE,
    revision      INTEGER NOT NULL,
    spec          TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (project, revision)
);

CREATE TABLE sandboxes (
    id            TEXT PRIMARY KEY NOT NULL,
    project       TEXT NOT NULL,
    revision      INTEGER NOT NULL,
    key_hash      TEXT NOT NULL UNIQUE,
    seed          TEXT NOT NULL,
    auth          TEXT NOT NULL,
    label         TEXT,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER,
    FOREIGN KEY (project, revision) REFERENCES revisions(project, revision) ON DELETE CASCADE
);
CREATE INDEX sandboxes_expiry ON sandboxes(expires_at_ms) WHERE expires_at_ms IS NOT NULL;

-- Remembers expired sandboxes so that their addresses answer "expired"
-- instead of "unknown" after the data is gone.
CREATE TABLE sandbox_tombstones (
    id            TEXT PRIMARY KEY NOT NULL,
    project       TEXT NOT NULL,
    expired_at_ms INTEGER NOT NULL
);
