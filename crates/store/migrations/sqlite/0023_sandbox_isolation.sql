-- A sandbox served from a Kubernetes namespace of its own: where its
-- namespace stands (JSON), and its sbx's admin token (sealed).
ALTER TABLE sandboxes ADD COLUMN isolation TEXT;
ALTER TABLE sandboxes ADD COLUMN isolation_token TEXT;
