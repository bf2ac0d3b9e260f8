-- Data-plane requests per UTC day (`day`: days since the epoch), added up
-- over every server that answered them: by account (its daily quota) and
-- by sandbox. No foreign keys: a server adds what it counted even when the
-- account or sandbox was removed meanwhile; old days are pruned.
CREATE TABLE account_requests (
    day        BIGINT NOT NULL,
    account_id TEXT NOT NULL,
    requests   BIGINT NOT NULL,
    PRIMARY KEY (day, account_id)
);
CREATE TABLE sandbox_requests (
    day        BIGINT NOT NULL,
    sandbox_id TEXT NOT NULL,
    requests   BIGINT NOT NULL,
    PRIMARY KEY (day, sandbox_id)
);

-- Written by any server whose lease holds, for sandboxes it served then —
-- even one that moved since — so fenced by lease only (not per row).
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON account_requests
    FOR EACH STATEMENT EXECUTE FUNCTION sbx_fence();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON sandbox_requests
    FOR EACH STATEMENT EXECUTE FUNCTION sbx_fence();
