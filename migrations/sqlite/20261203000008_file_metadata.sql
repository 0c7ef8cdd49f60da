-- Owners, modes and symlinks are part of the backup: each stored file version keeps the
-- file's type, full mode and owners ("0600 file freerad:freerad 101:101", the line of
-- `.config-backup/<domain>.meta` without its path), and those of the version it replaced.
-- NULL for versions recorded before metadata was kept, and for deletions.
ALTER TABLE config_file_changes ADD COLUMN file_meta TEXT;
ALTER TABLE config_file_changes ADD COLUMN previous_file_meta TEXT;
