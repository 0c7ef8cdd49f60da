//! Reading the trail: History's pages (stored rows, and the versions carried across each
//! commit when unchanged files are asked for), a commit's heads read once per page, and
//! the ids of carried rows (derived, the same in every query and in the view).

use std::collections::HashMap;

use super::*;

/// The file columns History reads from the stored part (`v` a file row); the commit's
/// columns come from its head, read once per commit (`CommitHead`).
pub(in crate::store) const STORED_FILE_COLUMNS: &str = "v.id AS id, v.commit_seq AS seq, v.config_file AS config_file, \
     v.change_type AS change_type, v.file_sha256 AS file_sha256, v.previous_file_sha256 AS previous_file_sha256, \
     v.file_meta AS file_meta, v.previous_file_meta AS previous_file_meta, v.change_summary AS change_summary, \
     v.change_detail AS change_detail, v.backed_up_at AS backed_up_at";

/// The columns of a commit's head.
pub(in crate::store) const HEAD_COLUMNS: &str = "seq, run_id, backup_date, domain, commit_hash, commit_message, previous_hash, \
     backed_up_at, backed_up_by";

/// The carried part: every commit `c` joined to the versions live across it.
pub(in crate::store) const CARRIED_FROM: &str = " FROM config_commits c JOIN config_file_changes v \
     ON v.site = c.site AND v.domain = c.domain AND v.commit_seq < c.seq \
     AND (v.next_seq IS NULL OR v.next_seq > c.seq) AND v.change_type <> 'deleted' \
     LEFT JOIN config_git_backups_legacy_ids l ON l.commit_seq = c.seq AND l.file_key = v.file_key";

/// How many commits History's include-unchanged walk reads at a time.
pub(in crate::store) const COMMIT_BATCH: i64 = 32;

/// A commit's fields, for the rows History builds from it.
#[derive(Debug, Clone)]
pub(in crate::store) struct CommitHead {
    pub seq: i64,
    pub run_id: Option<uuid::Uuid>,
    pub backup_date: NaiveDate,
    pub domain: Domain,
    pub commit_hash: String,
    pub commit_message: String,
    pub previous_hash: Option<String>,
    pub backed_up_at: DateTime<Utc>,
    pub backed_up_by: String,
}

impl CommitHead {
    /// A file row of this commit, as History shows it (stored, or carried across it).
    pub(super) fn with_file(&self, f: FileRow) -> AuditRow {
        AuditRow {
            id: f.id,
            seq: self.seq,
            run_id: self.run_id,
            backup_date: self.backup_date,
            domain: self.domain,
            config_file: f.config_file,
            commit_hash: self.commit_hash.clone(),
            commit_message: self.commit_message.clone(),
            changes_made: f.change_type != ChangeKind::Unchanged,
            change_type: f.change_type,
            previous_hash: self.previous_hash.clone(),
            file_sha256: f.file_sha256,
            previous_file_sha256: f.previous_file_sha256,
            file_meta: f.file_meta,
            previous_file_meta: f.previous_file_meta,
            change_summary: f.change_summary,
            change_detail: f.change_detail,
            backed_up_at: self.backed_up_at,
            backed_up_by: self.backed_up_by.clone(),
        }
    }
}

/// A History file row before its commit's head is attached.
pub(in crate::store) struct FileRow {
    pub seq: i64,
    pub backed_up_at: DateTime<Utc>,
    pub id: uuid::Uuid,
    pub config_file: String,
    pub change_type: ChangeKind,
    pub file_sha256: Option<String>,
    pub previous_file_sha256: Option<String>,
    pub file_meta: Option<String>,
    pub previous_file_meta: Option<String>,
    pub change_summary: Option<String>,
    pub change_detail: Option<String>,
}

/// History's rows: each file row with its commit's head. A file row whose commit is
/// missing is a corrupt trail (both are written and removed in one transaction).
pub(in crate::store) fn with_heads(
    files: Vec<FileRow>,
    heads: &HashMap<i64, CommitHead>,
) -> Result<Vec<AuditRow>, StoreError> {
    files
        .into_iter()
        .map(|f| {
            let head = heads
                .get(&f.seq)
                .ok_or_else(|| StoreError::Corrupt(format!("file row {} has no commit {}", f.id, f.seq)))?;
            Ok(head.with_file(f))
        })
        .collect()
}

/// The id of a carried (unchanged) row: a version 8 UUID of the commit's seq (48 bits)
/// and the file's key (60 bits). The view computes the same in SQL
/// (`'%012x80008%015x'`).
pub(in crate::store) fn derived_id(seq: i64, file_key: i64) -> uuid::Uuid {
    uuid::Uuid::parse_str(&format!("{seq:012x}80008{file_key:015x}")).unwrap_or_default()
}

/// Two lists sorted by path descending, merged, the first `limit`.
pub(in crate::store) fn merge_desc(a: Vec<AuditRow>, b: Vec<AuditRow>, limit: usize) -> Vec<AuditRow> {
    let mut out = Vec::with_capacity(limit.min(a.len() + b.len()));
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    while out.len() < limit {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x.config_file >= y.config_file,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        out.extend(if take_a { a.next() } else { b.next() });
    }
    out
}

macro_rules! audit_query_sql {
    ($store:ident, $db:ty) => {
        impl $store {
            /// The file columns of the carried part (`c` the commit, `v` the version live
            /// across it), matching `STORED_FILE_COLUMNS`.
            pub(in crate::store) fn carried_file_columns() -> String {
                format!(
                    "COALESCE(l.id, {}) AS id, c.seq AS seq, v.config_file AS config_file, \
                     'unchanged' AS change_type, v.file_sha256 AS file_sha256, v.file_sha256 AS previous_file_sha256, \
                     v.file_meta AS file_meta, v.file_meta AS previous_file_meta, NULL AS change_summary, \
                     NULL AS change_detail, c.backed_up_at AS backed_up_at",
                    Self::DERIVED_ID
                )
            }
            /// Pushes the History filters shared by both parts (`v` the file row, `c` the
            /// commit; `at` names the one filtered on site, domain and time).
            pub(in crate::store) fn push_filters(
                qb: &mut sqlx::QueryBuilder<'_, $db>,
                site: &str,
                q: &HistoryQuery,
                at: &str,
                commit_col: &str,
            ) {
                qb.push(format!(" WHERE {at}.site = ")).push_bind(site.to_owned());
                if let Some(d) = q.domain {
                    qb.push(format!(" AND {at}.domain = ")).push_bind(d.as_str());
                }
                if let Some(p) = &q.path {
                    qb.push(" AND v.config_file = ").push_bind(p.clone());
                }
                if let Some(s) = q.since {
                    qb.push(format!(" AND {at}.backed_up_at >= ")).push_bind(micros(s));
                }
                if let Some(u) = q.until {
                    qb.push(format!(" AND {at}.backed_up_at < ")).push_bind(micros(u));
                }
                if let Some(b) = &q.before {
                    // `seq <= cursor` first: a range the (site, commit_seq, config_file)
                    // index starts from, whatever the planner makes of the OR after it.
                    qb.push(format!(" AND {commit_col} <= "))
                        .push_bind(b.seq)
                        .push(format!(" AND ({commit_col} < "))
                        .push_bind(b.seq)
                        .push(" OR v.config_file < ")
                        .push_bind(b.config_file.clone())
                        .push(")");
                }
            }
            /// One History query over the stored part, and the carried part when asked: the
            /// file rows in History's order, then the heads of their commits in a second
            /// query (a page spans a few commits: their columns are read once each, not
            /// once per file).
            pub(in crate::store) async fn history_query(
                &self,
                site: &str,
                q: &HistoryQuery,
                carried: bool,
                limit: i64,
            ) -> Result<Vec<AuditRow>, StoreError> {
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT * FROM (SELECT ");
                qb.push(STORED_FILE_COLUMNS).push(" FROM config_file_changes v");
                Self::push_filters(&mut qb, site, q, "v", "v.commit_seq");
                match q.change_type {
                    Some(c) => {
                        qb.push(" AND v.change_type = ").push_bind(c.as_str());
                    }
                    None if !q.include_unchanged => {
                        qb.push(" AND v.change_type <> 'unchanged'");
                    }
                    None => {}
                }
                if carried {
                    qb.push(" UNION ALL SELECT ").push(Self::carried_file_columns()).push(CARRIED_FROM);
                    Self::push_filters(&mut qb, site, q, "c", "c.seq");
                }
                qb.push(") u ORDER BY seq DESC, config_file DESC LIMIT ").push_bind(limit);
                let files = qb
                    .build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::file_row)
                    .collect::<Result<Vec<_>, _>>()?;
                let heads = self.commit_heads(&files).await?;
                with_heads(files, &heads)
            }
            /// A row of `STORED_FILE_COLUMNS` (or the carried part's same columns).
            pub(in crate::store) fn file_row(r: &<$db as sqlx::Database>::Row) -> Result<FileRow, StoreError> {
                let change: String = r.try_get("change_type")?;
                Ok(FileRow {
                    seq: r.try_get("seq")?,
                    backed_up_at: r.try_get("backed_up_at")?,
                    id: r.try_get("id")?,
                    config_file: r.try_get("config_file")?,
                    change_type: ChangeKind::parse(&change)
                        .ok_or_else(|| StoreError::Corrupt(format!("unknown change_type {change:?}")))?,
                    file_sha256: r.try_get("file_sha256")?,
                    previous_file_sha256: r.try_get("previous_file_sha256")?,
                    file_meta: r.try_get("file_meta")?,
                    previous_file_meta: r.try_get("previous_file_meta")?,
                    change_summary: r.try_get("change_summary")?,
                    change_detail: r.try_get("change_detail")?,
                })
            }
            /// The heads of the commits `files` belong to, by seq, in one statement whatever
            /// their number (the seqs go in as one list, so the statement is prepared once
            /// per connection). On PostgreSQL the files' times bound it too, so only the
            /// partitions holding those commits are read.
            pub(in crate::store) async fn commit_heads(&self, files: &[FileRow]) -> Result<std::collections::HashMap<i64, CommitHead>, StoreError> {
                let seqs: std::collections::BTreeSet<i64> = files.iter().map(|f| f.seq).collect();
                let (Some(from), Some(to)) = (
                    files.iter().map(|f| f.backed_up_at).min(),
                    files.iter().map(|f| f.backed_up_at).max(),
                ) else {
                    return Ok(std::collections::HashMap::new());
                };
                let list = seqs.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT ");
                qb.push(HEAD_COLUMNS).push(" FROM config_commits WHERE ");
                if Self::HEADS_BY_TIME {
                    qb.push("backed_up_at >= ")
                        .push_bind(from)
                        .push(" AND backed_up_at <= ")
                        .push_bind(to)
                        .push(" AND ");
                }
                qb.push(Self::SEQ_LIST.0).push_bind(list).push(Self::SEQ_LIST.1);
                let mut heads = std::collections::HashMap::with_capacity(seqs.len());
                for r in qb.build().fetch_all(&self.pool).await? {
                    let head = Self::commit_head(&r)?;
                    heads.insert(head.seq, head);
                }
                Ok(heads)
            }
            pub(in crate::store) async fn history_rows(&self, q: &HistoryQuery) -> Result<Vec<AuditRow>, StoreError> {
                let site = q.site.clone().unwrap_or_else(|| self.site.clone());
                let carried = match q.change_type {
                    Some(ChangeKind::Unchanged) => true,
                    Some(_) => false,
                    None => q.include_unchanged,
                };
                // Changed rows, or one file's rows: one query the indexes answer in order.
                if !carried || q.path.is_some() {
                    return self.history_query(&site, q, carried, q.limit).await;
                }
                // Unchanged rows of every file: commit by commit, newest first, so a page
                // never expands more commits than it shows.
                let mut out: Vec<AuditRow> = Vec::new();
                let mut upto = q.before.as_ref().map(|b| b.seq);
                loop {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                        "SELECT {} FROM config_commits c WHERE c.site = ",
                        HEAD_COLUMNS
                    ));
                    qb.push_bind(site.clone());
                    if let Some(d) = q.domain {
                        qb.push(" AND c.domain = ").push_bind(d.as_str());
                    }
                    if let Some(s) = q.since {
                        qb.push(" AND c.backed_up_at >= ").push_bind(micros(s));
                    }
                    if let Some(u) = q.until {
                        qb.push(" AND c.backed_up_at < ").push_bind(micros(u));
                    }
                    if let Some(u) = upto {
                        qb.push(" AND c.seq <= ").push_bind(u);
                    }
                    qb.push(" ORDER BY c.seq DESC LIMIT ").push_bind(COMMIT_BATCH);
                    let commits = qb.build().fetch_all(&self.pool).await?;
                    for c in &commits {
                        let remaining = q.limit - out.len() as i64;
                        if remaining <= 0 {
                            return Ok(out);
                        }
                        let head = Self::commit_head(c)?;
                        out.extend(self.commit_rows(&site, q, &head, remaining).await?);
                    }
                    if (commits.len() as i64) < COMMIT_BATCH || out.len() as i64 >= q.limit {
                        out.truncate(q.limit.max(0) as usize);
                        return Ok(out);
                    }
                    upto = commits.last().map(|c| c.try_get::<i64, _>("seq")).transpose()?.map(|s| s - 1);
                }
            }
            pub(in crate::store) fn commit_head(r: &<$db as sqlx::Database>::Row) -> Result<CommitHead, StoreError> {
                let domain: String = r.try_get("domain")?;
                Ok(CommitHead {
                    seq: r.try_get("seq")?,
                    run_id: r.try_get("run_id")?,
                    backup_date: r.try_get("backup_date")?,
                    domain: domain.parse().map_err(|e: crate::domain::UnknownDomain| StoreError::Corrupt(e.to_string()))?,
                    commit_hash: r.try_get("commit_hash")?,
                    commit_message: r.try_get("commit_message")?,
                    previous_hash: r.try_get("previous_hash")?,
                    backed_up_at: r.try_get("backed_up_at")?,
                    backed_up_by: r.try_get("backed_up_by")?,
                })
            }
            /// One commit's rows after the cursor, by path descending: its stored rows and
            /// the versions live across it, each read in index order, merged.
            pub(in crate::store) async fn commit_rows(
                &self,
                site: &str,
                q: &HistoryQuery,
                head: &CommitHead,
                limit: i64,
            ) -> Result<Vec<AuditRow>, StoreError> {
                let after = q.before.as_ref().filter(|b| b.seq == head.seq).map(|b| b.config_file.clone());
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT ");
                qb.push(STORED_FILE_COLUMNS)
                    .push(" FROM config_file_changes v WHERE v.commit_seq = ")
                    .push_bind(head.seq);
                if let Some(f) = &after {
                    qb.push(" AND v.config_file < ").push_bind(f.clone());
                }
                if let Some(c) = q.change_type {
                    qb.push(" AND v.change_type = ").push_bind(c.as_str());
                }
                qb.push(" ORDER BY v.config_file DESC LIMIT ").push_bind(limit);
                let mut stored = Vec::new();
                for r in qb.build().fetch_all(&self.pool).await? {
                    stored.push(head.with_file(Self::file_row(&r)?));
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT config_file, file_key, file_sha256, file_meta FROM config_file_changes WHERE site = ",
                );
                qb.push_bind(site.to_owned())
                    .push(" AND domain = ")
                    .push_bind(head.domain.as_str())
                    .push(" AND ").push(Self::OLDER_THAN).push(" < ")
                    .push_bind(head.seq)
                    .push(" AND (next_seq IS NULL OR next_seq > ")
                    .push_bind(head.seq)
                    .push(") AND change_type <> 'deleted'");
                if let Some(f) = &after {
                    qb.push(" AND config_file < ").push_bind(f.clone());
                }
                qb.push(" ORDER BY config_file DESC LIMIT ").push_bind(limit);
                let carried_rows = qb.build().fetch_all(&self.pool).await?;
                let legacy: std::collections::HashMap<i64, uuid::Uuid> = if carried_rows.is_empty() {
                    std::collections::HashMap::new()
                } else {
                    sqlx::query("SELECT file_key, id FROM config_git_backups_legacy_ids WHERE commit_seq = $1")
                        .bind(head.seq)
                        .fetch_all(&self.pool)
                        .await?
                        .iter()
                        .map(|r| Ok((r.try_get("file_key")?, r.try_get("id")?)))
                        .collect::<Result<_, StoreError>>()?
                };
                let mut carried = Vec::with_capacity(carried_rows.len());
                for r in &carried_rows {
                    let key: i64 = r.try_get("file_key")?;
                    let sha: Option<String> = r.try_get("file_sha256")?;
                    let meta: Option<String> = r.try_get("file_meta")?;
                    let id = legacy.get(&key).copied().unwrap_or_else(|| derived_id(head.seq, key));
                    let config_file = r.try_get("config_file")?;
                    let row = head.with_file(FileRow {
                        seq: head.seq,
                        backed_up_at: head.backed_up_at,
                        id,
                        config_file,
                        change_type: ChangeKind::Unchanged,
                        file_sha256: sha.clone(),
                        previous_file_sha256: sha,
                        file_meta: meta.clone(),
                        previous_file_meta: meta,
                        change_summary: None,
                        change_detail: None,
                    });
                    carried.push(row);
                }
                Ok(merge_desc(stored, carried, limit.max(0) as usize))
            }
        }
    };
}

audit_query_sql!(SqliteStore, sqlx::Sqlite);
audit_query_sql!(PostgresStore, sqlx::Postgres);

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::audit::record::tests::row;

    #[test]
    fn derived_ids_are_version_8_and_distinct_per_commit_and_file() {
        let id = derived_id(0x1a, 0x2b);
        assert_eq!(id.to_string(), "00000000-001a-8000-8000-00000000002b");
        assert_eq!(id.get_version_num(), 8);
        assert_ne!(derived_id(1, 2), derived_id(2, 1));
    }

    #[test]
    fn merged_rows_keep_path_order_and_the_limit() {
        let a = vec![row("z", ChangeKind::Modified, "1"), row("m", ChangeKind::Added, "1")];
        let b = vec![
            row("y", ChangeKind::Unchanged, "1"),
            row("a", ChangeKind::Unchanged, "1"),
        ];
        let files: Vec<String> = merge_desc(a.clone(), b.clone(), 10)
            .into_iter()
            .map(|r| r.config_file)
            .collect();
        assert_eq!(files, ["z", "y", "m", "a"]);
        assert_eq!(merge_desc(a, b, 3).len(), 3);
    }
}
