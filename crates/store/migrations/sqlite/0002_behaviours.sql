-- Behaviour files of a revision (scripts, templates, fixtures, env,
-- modules, settings) as one JSON document; '{}' for a spec alone.
ALTER TABLE revisions ADD COLUMN files TEXT NOT NULL DEFAULT '{}';

-- A sandbox created without a revision follows its project's latest one.
ALTER TABLE sandboxes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 1;
-- The sandbox's overrides of the project's environment parameters (JSON).
ALTER TABLE sandboxes ADD COLUMN env TEXT NOT NULL DEFAULT '{}';

-- What requests changed on top of the fixtures: a record's latest value,
-- or NULL once deleted. `version` orders concurrent writes.
CREATE TABLE resources (
    sandbox_id TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    scope      TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    value      TEXT,
    version    INTEGER NOT NULL,
    PRIMARY KEY (sandbox_id, collection, id)
);

-- Events behaviours emitted, waiting for webhook delivery.
CREATE TABLE events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    sandbox_id    TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    event_type    TEXT NOT NULL,
    payload       TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX events_by_sandbox ON events(sandbox_id, id);
