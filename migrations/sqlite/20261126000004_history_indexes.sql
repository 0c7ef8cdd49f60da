-- History's usual queries filter on a file or a domain and skip the rows of files that did
-- not change ("changes_made"), newest first. With these the database reads just the rows
-- it returns, however many unchanged rows years of daily runs left behind.
CREATE INDEX config_git_backups_file_changed_seq ON config_git_backups (config_file, changes_made, seq DESC);
CREATE INDEX config_git_backups_domain_changed_seq ON config_git_backups (domain, changes_made, seq DESC);
