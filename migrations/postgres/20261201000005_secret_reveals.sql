-- Diffs that showed sealed secrets in clear (an admin's reveal_secrets=true): who, when,
-- which commits. Written before the answer leaves the server.
CREATE TABLE config_secret_reveals (
    id          UUID PRIMARY KEY,
    revealed_at TIMESTAMPTZ NOT NULL,
    revealed_by TEXT NOT NULL,
    commit1     TEXT NOT NULL,
    commit2     TEXT NOT NULL,
    domain      TEXT,
    path        TEXT
);
CREATE INDEX config_secret_reveals_at ON config_secret_reveals (revealed_at DESC);
