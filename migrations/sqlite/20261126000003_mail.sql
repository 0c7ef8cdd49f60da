-- Mails sent (or not) to the NOC: a mail that cannot be sent never fails a backup, but
-- Status shows it.
CREATE TABLE config_backup_mail (
    id         BLOB PRIMARY KEY,
    sent_at    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    ok         BOOLEAN NOT NULL,
    error      TEXT
);
CREATE INDEX config_backup_mail_sent_at ON config_backup_mail (sent_at DESC);
