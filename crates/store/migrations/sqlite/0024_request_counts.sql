-- Data-plane requests per UTC day (`day`: days since the epoch), added up
-- over every server that answered them: by account (its daily quota) and
-- by sandbox. No foreign keys: a server adds what it counted even when the
-- account or sandbox was removed meanwhile; old days are pruned.
CREATE TABLE account_requests (
    day        INTEGER NOT NULL,
    account_id TEXT NOT NULL,
    requests   INTEGER NOT NULL,
    PRIMARY KEY (day, account_id)
);
CREATE TABLE sandbox_requests (
    day        INTEGER NOT NULL,
    sandbox_id TEXT NOT NULL,
    requests   INTEGER NOT NULL,
    PRIMARY KEY (day, sandbox_id)
);
