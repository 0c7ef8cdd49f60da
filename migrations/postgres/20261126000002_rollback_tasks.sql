-- Rollback tasks and their stages, so a restart or a late subscriber sees every stage.
CREATE TABLE config_rollback_tasks (
    id               UUID PRIMARY KEY,
    domains          TEXT NOT NULL,
    target_hash      TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'validating', 'snapshot', 'applying', 'reloading',
                                                    'verifying', 'reverting', 'success', 'failed')),
    requested_by     UUID NOT NULL,
    reason           TEXT NOT NULL,
    requested_at     TIMESTAMPTZ NOT NULL,
    completed_at     TIMESTAMPTZ,
    duration_seconds DOUBLE PRECISION,
    error            TEXT,
    revert_succeeded BOOLEAN NOT NULL DEFAULT FALSE,
    warnings         TEXT NOT NULL DEFAULT '',
    snapshot_commit  TEXT,
    host             TEXT NOT NULL
);
CREATE INDEX config_rollback_tasks_state ON config_rollback_tasks (state);

CREATE TABLE config_rollback_stages (
    task_id     UUID NOT NULL REFERENCES config_rollback_tasks (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    stage       TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    ok          BOOLEAN NOT NULL DEFAULT FALSE,
    message     TEXT NOT NULL DEFAULT '',
    output      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (task_id, seq)
);

ALTER TABLE config_rollback_history ADD COLUMN task_id UUID;
CREATE INDEX config_rollback_history_task ON config_rollback_history (task_id);

-- A process restarted with the same pid (PID 1 in a container) is told apart by its instance.
ALTER TABLE engine_lock ADD COLUMN instance TEXT NOT NULL DEFAULT '';
