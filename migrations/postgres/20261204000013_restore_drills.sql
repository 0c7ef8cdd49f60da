-- Restore drills (drill/): each drill cloned the remote afresh and checked, per domain,
-- the signatures, the audit chain against the trail and the trailers, that every sealed
-- file unseals, that the domain's files match the hashes the trail recorded, and the
-- validate command on the restored files. One row per drill, one per domain it checked;
-- "last proven restorable" is a domain's newest 'proven' row.
CREATE TABLE config_restore_drills (
    id           UUID PRIMARY KEY,
    site         TEXT NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ NOT NULL,
    trigger_kind TEXT NOT NULL CHECK (trigger_kind IN ('scheduled', 'manual')),
    requested_by TEXT NOT NULL,
    request_id   TEXT,
    remote_head  TEXT,
    proven       BOOLEAN NOT NULL,
    error        TEXT,
    notes        TEXT NOT NULL
);
CREATE INDEX config_restore_drills_site ON config_restore_drills (site, finished_at);

CREATE TABLE config_restore_drill_domains (
    drill_id    UUID NOT NULL REFERENCES config_restore_drills (id) ON DELETE CASCADE,
    site        TEXT NOT NULL,
    domain      TEXT NOT NULL,
    proven      BOOLEAN NOT NULL,
    commit_hash TEXT,
    files       BIGINT NOT NULL,
    causes      TEXT NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (drill_id, domain)
);
CREATE INDEX config_restore_drill_domains_last ON config_restore_drill_domains (site, domain, proven, finished_at);
