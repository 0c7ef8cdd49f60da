-- The audit trail: backup runs, one row per file per domain per run, rollbacks,
-- and the engine lock that keeps one backup or rollback at a time.
-- UUIDs are 16-byte BLOBs and times RFC 3339 TEXT (as sqlx encodes them).

CREATE TABLE config_backup_runs (
    id               BLOB PRIMARY KEY,
    trigger          TEXT NOT NULL CHECK (trigger IN ('scheduled', 'manual', 'rollback')),
    requested_by     TEXT NOT NULL,
    host             TEXT NOT NULL,
    started_at       TEXT NOT NULL,
    finished_at      TEXT,
    outcome          TEXT NOT NULL CHECK (outcome IN ('running', 'success', 'partial', 'failed', 'interrupted')),
    error            TEXT,
    push_outcome     TEXT CHECK (push_outcome IN ('pushed', 'failed', 'diverged', 'not_attempted')),
    push_error       TEXT,
    unpushed_commits INTEGER NOT NULL DEFAULT 0,
    files_added      INTEGER NOT NULL DEFAULT 0,
    files_modified   INTEGER NOT NULL DEFAULT 0,
    files_deleted    INTEGER NOT NULL DEFAULT 0,
    files_unchanged  INTEGER NOT NULL DEFAULT 0,
    commits          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX config_backup_runs_started_at ON config_backup_runs (started_at DESC);

CREATE TABLE config_git_backups (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    id                   BLOB NOT NULL UNIQUE,
    run_id               BLOB,
    backup_date          TEXT NOT NULL,
    domain               TEXT NOT NULL CHECK (domain IN ('gateway', 'dns', 'radius', 'kea', 'ospf')),
    config_file          TEXT NOT NULL,
    commit_hash          TEXT NOT NULL,
    commit_message       TEXT NOT NULL,
    changes_made         BOOLEAN NOT NULL,
    change_type          TEXT NOT NULL CHECK (change_type IN ('added', 'modified', 'deleted', 'unchanged')),
    previous_hash        TEXT,
    file_sha256          TEXT,
    previous_file_sha256 TEXT,
    backed_up_at         TEXT NOT NULL,
    backed_up_by         TEXT NOT NULL
);
CREATE INDEX config_git_backups_domain_seq ON config_git_backups (domain, seq DESC);
CREATE INDEX config_git_backups_file_seq ON config_git_backups (config_file, seq DESC);
CREATE INDEX config_git_backups_changed_seq ON config_git_backups (changes_made, seq DESC);
CREATE INDEX config_git_backups_commit ON config_git_backups (commit_hash);
CREATE INDEX config_git_backups_backed_up_at ON config_git_backups (backed_up_at);
CREATE INDEX config_git_backups_run ON config_git_backups (run_id);

CREATE TABLE config_rollback_history (
    id               BLOB PRIMARY KEY,
    requested_at     TEXT NOT NULL,
    requested_by     BLOB NOT NULL,
    domain           TEXT NOT NULL CHECK (domain IN ('gateway', 'dns', 'radius', 'kea', 'ospf')),
    target_hash      TEXT NOT NULL,
    rollback_status  TEXT NOT NULL CHECK (rollback_status IN ('pending', 'in_progress', 'success', 'failed')),
    completed_at     TEXT,
    reason           TEXT,
    duration_seconds REAL
);
CREATE INDEX config_rollback_history_requested_at ON config_rollback_history (requested_at DESC);

CREATE TABLE engine_lock (
    name         TEXT PRIMARY KEY,
    holder_kind  TEXT NOT NULL,
    holder_id    BLOB NOT NULL,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    acquired_at  TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL
);
