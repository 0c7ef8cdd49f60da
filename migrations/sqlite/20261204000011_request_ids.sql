-- The request id of the call that started a backup run or a rollback (the caller's
-- x-request-id, or the one the server made up): the audit record points at the call's
-- log lines. NULL for the schedule's runs made without a call and for older rows.
ALTER TABLE config_backup_runs ADD COLUMN request_id TEXT;
ALTER TABLE config_rollback_tasks ADD COLUMN request_id TEXT;
