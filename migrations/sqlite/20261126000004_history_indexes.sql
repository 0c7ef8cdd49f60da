-- History's usual file query skips the rows of files that did not change
-- ("changes_made"), newest first: with the flag in the index the database reads just the
-- rows it returns, however many unchanged rows years of daily runs left behind. It
-- replaces the (config_file, seq) index: a file has at most a row a run, so the rare query
-- that includes unchanged rows sorts a few thousand rows at most. (Domain queries keep
-- (domain, seq): a domain's changed rows are dense enough to find by scanning it.)
CREATE INDEX config_git_backups_file_changed_seq ON config_git_backups (config_file, changes_made, seq DESC);
DROP INDEX config_git_backups_file_seq;
