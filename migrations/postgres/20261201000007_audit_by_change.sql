-- The audit trail grows with changes, not with files x days, and carries the site.
--
-- config_commits: one row per domain commit. config_file_changes: one row per file a
-- commit added, modified or deleted, plus an "unchanged" anchor where the trail had no
-- live version of a file (a trail started on an existing repository, retention, a gap).
-- A stored row is that file's version from its commit until next_seq, the seq of the
-- commit of the file's next row in the same site and domain (NULL while it is current).
-- A commit's unchanged files are the versions live across it, so a no-change commit
-- stores nothing but its own row.
--
-- Both tables are partitioned by month of backed_up_at: retention drops whole months.
-- config_backup_ensure_month() creates a month's partitions (the server calls it ahead
-- of time and before it records a commit of a month that has none).
--
-- config_git_backups becomes a view with the spec's columns, one row per file per
-- commit, unchanged files included. The id of an unchanged row is derived from
-- (commit seq, file_key) (a version 8 UUID), or, for rows migrated from the table, kept
-- in config_git_backups_legacy_ids.

CREATE SEQUENCE config_commits_seq;
CREATE TABLE config_commits (
    seq            BIGINT NOT NULL DEFAULT nextval('config_commits_seq'),
    site           TEXT NOT NULL,
    run_id         UUID,
    commit_hash    TEXT NOT NULL,
    domain         TEXT NOT NULL CHECK (domain IN ('gateway', 'dns', 'radius', 'kea', 'ospf')),
    backup_date    DATE NOT NULL,
    commit_message TEXT NOT NULL,
    previous_hash  TEXT,
    backed_up_at   TIMESTAMPTZ NOT NULL,
    backed_up_by   TEXT NOT NULL,
    -- The blob id of the domain's manifest in this commit: a commit whose parent holds
    -- the same manifest is recorded from its changed files alone.
    manifest       TEXT,
    PRIMARY KEY (seq, backed_up_at)
) PARTITION BY RANGE (backed_up_at);

CREATE SEQUENCE config_file_changes_seq;
CREATE TABLE config_file_changes (
    seq                  BIGINT NOT NULL DEFAULT nextval('config_file_changes_seq'),
    commit_seq           BIGINT NOT NULL,
    site                 TEXT NOT NULL,
    domain               TEXT NOT NULL,
    config_file          TEXT NOT NULL,
    file_key             BIGINT NOT NULL,
    id                   UUID NOT NULL,
    change_type          TEXT NOT NULL CHECK (change_type IN ('added', 'modified', 'deleted', 'unchanged')),
    file_sha256          TEXT,
    previous_file_sha256 TEXT,
    next_seq             BIGINT,
    backed_up_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (seq, backed_up_at)
) PARTITION BY RANGE (backed_up_at);

CREATE TABLE config_git_backups_legacy_ids (
    commit_seq   BIGINT NOT NULL,
    file_key     BIGINT NOT NULL,
    id           UUID NOT NULL,
    backed_up_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (commit_seq, file_key)
);

CREATE FUNCTION config_backup_ensure_month(m DATE) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    lo     TIMESTAMPTZ := date_trunc('month', m::timestamp) AT TIME ZONE 'UTC';
    hi     TIMESTAMPTZ := (date_trunc('month', m::timestamp) + interval '1 month') AT TIME ZONE 'UTC';
    suffix TEXT := to_char(date_trunc('month', m::timestamp), 'YYYYMM');
    t      TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['config_commits', 'config_file_changes'] LOOP
        IF to_regclass(t || '_' || suffix) IS NULL THEN
            -- Replicas creating the same month wait for each other instead of failing.
            PERFORM pg_advisory_xact_lock(hashtext('config_backup_ensure_month'));
            IF to_regclass(t || '_' || suffix) IS NULL THEN
                EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                               t || '_' || suffix, t, lo, hi);
            END IF;
        END IF;
    END LOOP;
END
$fn$;

-- The months the old table covers, and this month and the next three.
SELECT config_backup_ensure_month(m)
FROM (
    SELECT DISTINCT (backed_up_at AT TIME ZONE 'UTC')::date AS m FROM config_git_backups
    UNION
    SELECT ((now() AT TIME ZONE 'UTC') + i * interval '1 month')::date FROM generate_series(0, 3) AS i
) months;

-- Commits: the rows of one (commit, domain, time), in the order they were recorded.
INSERT INTO config_commits (seq, site, run_id, commit_hash, domain, backup_date, commit_message, previous_hash,
                            backed_up_at, backed_up_by)
SELECT DISTINCT ON (commit_hash, domain, backed_up_at)
       seq, 'default', run_id, commit_hash, domain, backup_date, commit_message, previous_hash, backed_up_at,
       backed_up_by
FROM config_git_backups
ORDER BY commit_hash, domain, backed_up_at, seq;
SELECT setval('config_commits_seq', COALESCE((SELECT MAX(seq) FROM config_commits), 0) + 1, false);

-- Each old row with its commit, the commit's ordinal in its domain, and the file's
-- previous row: a file's rows in consecutive commits form an island.
CREATE TEMP TABLE migrate_ords ON COMMIT DROP AS
SELECT seq, domain, ROW_NUMBER() OVER (PARTITION BY domain ORDER BY seq) AS ord FROM config_commits;
CREATE INDEX ON migrate_ords (domain, ord);
CREATE INDEX ON migrate_ords (seq);

CREATE TEMP TABLE migrate_rows ON COMMIT DROP AS
WITH r AS (
    SELECT g.seq AS row_seq, g.id, g.domain, g.config_file, g.change_type, g.file_sha256, g.previous_file_sha256,
           g.backed_up_at, c.seq AS cseq, o.ord
    FROM config_git_backups g
    JOIN config_commits c ON c.commit_hash = g.commit_hash AND c.domain = g.domain AND c.backed_up_at = g.backed_up_at
    JOIN migrate_ords o ON o.seq = c.seq
), w AS (
    SELECT r.*,
           LAG(change_type) OVER f AS prev_type,
           LAG(file_sha256) OVER f AS prev_sha,
           LAG(ord) OVER f AS prev_ord,
           ord - ROW_NUMBER() OVER f AS island
    FROM r
    WINDOW f AS (PARTITION BY domain, config_file ORDER BY ord, row_seq)
)
SELECT w.*,
       (change_type <> 'unchanged' OR prev_type IS NULL OR prev_type = 'deleted' OR prev_ord <> ord - 1
        OR prev_sha IS DISTINCT FROM file_sha256) AS stored,
       MAX(ord) OVER (PARTITION BY domain, config_file, island) AS last_ord
FROM w;

INSERT INTO config_file_changes (commit_seq, site, domain, config_file, file_key, id, change_type, file_sha256,
                                 previous_file_sha256, next_seq, backed_up_at)
SELECT k.cseq, 'default', k.domain, k.config_file, 0, k.id, k.change_type, k.file_sha256, k.previous_file_sha256,
       COALESCE(k.next_in_island,
                (SELECT o.seq FROM migrate_ords o WHERE o.domain = k.domain AND o.ord = k.last_ord + 1)),
       k.backed_up_at
FROM (
    SELECT m.*, LEAD(cseq) OVER (PARTITION BY domain, config_file, island ORDER BY ord, row_seq) AS next_in_island
    FROM migrate_rows m WHERE stored
) k
ORDER BY k.row_seq;

UPDATE config_file_changes v SET file_key = f.file_key
FROM (SELECT site, domain, config_file, MIN(seq) AS file_key FROM config_file_changes GROUP BY site, domain, config_file) f
WHERE f.site = v.site AND f.domain = v.domain AND f.config_file = v.config_file;

INSERT INTO config_git_backups_legacy_ids (commit_seq, file_key, id, backed_up_at)
SELECT m.cseq, f.file_key, m.id, m.backed_up_at
FROM migrate_rows m
JOIN (SELECT domain, config_file, MIN(file_key) AS file_key FROM config_file_changes GROUP BY domain, config_file) f
  ON f.domain = m.domain AND f.config_file = m.config_file
WHERE NOT m.stored;

DROP TABLE config_git_backups;

CREATE INDEX config_commits_site_seq ON config_commits (site, seq);
CREATE INDEX config_commits_site_domain_seq ON config_commits (site, domain, seq);
CREATE INDEX config_commits_hash ON config_commits (commit_hash);
CREATE INDEX config_commits_run ON config_commits (run_id);
CREATE INDEX config_commits_seq_idx ON config_commits (seq);
CREATE INDEX config_file_changes_commit ON config_file_changes (commit_seq, config_file);
CREATE INDEX config_file_changes_site_seq ON config_file_changes (site, commit_seq, config_file);
CREATE INDEX config_file_changes_file ON config_file_changes (site, domain, config_file, commit_seq);
CREATE INDEX config_file_changes_path ON config_file_changes (site, config_file, commit_seq);
CREATE INDEX config_file_changes_live ON config_file_changes (site, domain, config_file) WHERE next_seq IS NULL;
CREATE INDEX config_file_changes_next ON config_file_changes (site, domain, next_seq);
CREATE INDEX config_git_backups_legacy_ids_at ON config_git_backups_legacy_ids (backed_up_at);

CREATE VIEW config_git_backups AS
SELECT v.id AS id, c.backup_date AS backup_date, c.domain AS domain, v.config_file AS config_file,
       c.commit_hash AS commit_hash, c.commit_message AS commit_message,
       v.change_type <> 'unchanged' AS changes_made, c.previous_hash AS previous_hash,
       c.backed_up_at AS backed_up_at, c.backed_up_by AS backed_up_by
FROM config_file_changes v
JOIN config_commits c ON c.seq = v.commit_seq AND c.backed_up_at = v.backed_up_at
UNION ALL
SELECT COALESCE(l.id, (lpad(to_hex(c.seq), 12, '0') || '80008' || lpad(to_hex(v.file_key), 15, '0'))::uuid),
       c.backup_date, c.domain, v.config_file, c.commit_hash, c.commit_message, FALSE, c.previous_hash,
       c.backed_up_at, c.backed_up_by
FROM config_commits c
JOIN config_file_changes v
  ON v.site = c.site AND v.domain = c.domain AND v.commit_seq < c.seq
 AND (v.next_seq IS NULL OR v.next_seq > c.seq) AND v.change_type <> 'deleted'
LEFT JOIN config_git_backups_legacy_ids l ON l.commit_seq = c.seq AND l.file_key = v.file_key;

-- Sites: every run, rollback, lock, mail and reveal row carries its site. One-site
-- installs are the site "default".
ALTER TABLE config_backup_runs ADD COLUMN site TEXT NOT NULL DEFAULT 'default';
CREATE INDEX config_backup_runs_site_started_at ON config_backup_runs (site, started_at);
ALTER TABLE config_rollback_tasks ADD COLUMN site TEXT NOT NULL DEFAULT 'default';
ALTER TABLE config_backup_mail ADD COLUMN site TEXT NOT NULL DEFAULT 'default';
ALTER TABLE config_secret_reveals ADD COLUMN site TEXT NOT NULL DEFAULT 'default';
-- The engine lock is per site: its name is the site.
ALTER TABLE engine_lock ADD COLUMN site TEXT NOT NULL DEFAULT 'default';
UPDATE engine_lock SET name = 'default' WHERE name = 'engine';

-- The sites a server has announced, with their schedule, for ListSites.
CREATE TABLE config_backup_sites (
    site             TEXT PRIMARY KEY,
    host             TEXT NOT NULL,
    schedule_enabled BOOLEAN NOT NULL,
    schedule_hour    INTEGER NOT NULL,
    schedule_minute  INTEGER NOT NULL,
    seen_at          TIMESTAMPTZ NOT NULL
);
