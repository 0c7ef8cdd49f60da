-- Why a domain failed in a run (a full disk, a permission...), for Status' per-domain
-- last error. One row per failed domain of a run.
CREATE TABLE config_backup_domain_errors (
    run_id  UUID NOT NULL,
    domain  TEXT NOT NULL,
    error   TEXT NOT NULL,
    PRIMARY KEY (run_id, domain)
);
