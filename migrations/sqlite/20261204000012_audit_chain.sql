-- The hash chain over the audit trail, one chain per site (store/audit/chain.rs): each
-- recorded commit appends a link whose hash covers the previous link's hash and the
-- commit as stored; a rebase of recorded commits appends a "rewrite" link; retention
-- turns the last link of the pruned prefix into a "checkpoint". Commits recorded before
-- this migration are not covered: a site's chain starts at its first commit after it.
CREATE TABLE config_audit_chain (
    site        TEXT NOT NULL,
    position    BIGINT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('commit', 'rewrite', 'checkpoint')),
    commit_seq  BIGINT,
    detail      TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (site, position)
);
