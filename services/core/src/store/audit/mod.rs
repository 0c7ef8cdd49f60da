//! The audit trail stored by change (migration `..._audit_by_change.sql`).
//!
//! A commit is a row of `config_commits`. A file row (`config_file_changes`) is stored
//! when a commit added, modified or deleted the file, or as an "unchanged" anchor when the
//! trail holds no current version of it (a trail started on an existing repository, after
//! retention, after a gap, or with a different hash). A stored row is the file's version
//! from its commit until `next_seq`, the seq of the commit of the file's next stored row
//! in the same site and domain (NULL while current). A commit's unchanged files are then
//! the versions live across it: no-change days cost one commit row per domain.
//!
//! Invariant: a file row is stored or carried for every file of every recorded commit,
//! exactly once; the `config_git_backups` view and History read the same two parts.
//! Recording a commit reconciles the whole file list the engine gives against the live
//! versions (the ones it does not name are closed), so the trail stays exact even after
//! a gap.

mod chain;
mod query;
mod record;
mod retention;

pub use chain::{ChainCommit, ChainReport, TRAILER_AUDIT_CHAIN};

use super::*;

pub(super) use retention::{month_of, partition_month};

/// One file in one domain commit of one run: a row of the `config_git_backups` view.
/// Written a commit at a time (every file of the commit's domain, unchanged ones
/// included); stored a row per changed file (see `audit.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    /// Row id: stable across queries.
    pub id: Uuid,
    /// The commit's position in the trail (set by the database): with `config_file`, the
    /// keyset cursor.
    pub seq: i64,
    /// The run that made the commit, if known.
    pub run_id: Option<Uuid>,
    /// The backup date (UTC).
    pub backup_date: NaiveDate,
    /// The domain.
    pub domain: Domain,
    /// The file path.
    pub config_file: String,
    /// The commit.
    pub commit_hash: String,
    /// Its message.
    pub commit_message: String,
    /// Whether the file changed.
    pub changes_made: bool,
    /// How.
    pub change_type: ChangeKind,
    /// The parent commit.
    pub previous_hash: Option<String>,
    /// SHA-256 after.
    pub file_sha256: Option<String>,
    /// SHA-256 before.
    pub previous_file_sha256: Option<String>,
    /// Type, full mode and owners after ("0600 file freerad:freerad 101:101", see
    /// [`crate::metadata::FileMeta::record`]); `None` when deleted or not recorded.
    pub file_meta: Option<String>,
    /// The same before.
    pub previous_file_meta: Option<String>,
    /// The change in the service's terms, one line ("+2 rules in inet filter input").
    pub change_summary: Option<String>,
    /// The same, structured (`Summary::encode_changes`).
    pub change_detail: Option<String>,
    /// When.
    pub backed_up_at: DateTime<Utc>,
    /// "system" or the caller's subject.
    pub backed_up_by: String,
}

/// A domain commit as the audit trail records it, with the rows of its changed files.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditCommit {
    /// The run that made it, if known.
    pub run_id: Option<Uuid>,
    /// The backup date (UTC).
    pub backup_date: NaiveDate,
    /// The domain.
    pub domain: Domain,
    /// The commit.
    pub commit_hash: String,
    /// Its subject line.
    pub commit_message: String,
    /// Its parent.
    pub previous_hash: Option<String>,
    /// When.
    pub backed_up_at: DateTime<Utc>,
    /// "system" or the caller's subject.
    pub backed_up_by: String,
    /// The blob id of the domain's manifest in this commit, if known.
    pub manifest: Option<String>,
    /// The blob id of the domain's manifest in its parent (`None`: the parent has none).
    pub parent_manifest: Option<String>,
    /// Its files: for [`Store::record_following`] the added, modified and deleted ones;
    /// for [`Store::record_full`] every file, unchanged ones included.
    pub files: Vec<AuditRow>,
}

/// A domain's last commit and last change, from the audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainSummary {
    /// The last commit.
    pub last_commit: String,
    /// When.
    pub last_at: DateTime<Utc>,
    /// The last commit that changed a file.
    pub last_change_commit: Option<String>,
    /// When.
    pub last_change_at: Option<DateTime<Utc>>,
}

/// A file of a domain as the audit trail holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFile {
    /// The path.
    pub path: String,
    /// The SHA-256 of its stored (sealed) form.
    pub sha256: String,
    /// Its type, mode and owners as recorded, if recorded.
    pub meta: Option<String>,
}

/// Where a History page ends: rows come newest commit first, and within a commit by
/// path, descending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryCursor {
    /// The last row's commit position ([`AuditRow::seq`]).
    pub seq: i64,
    /// The last row's path.
    pub config_file: String,
}

/// A History query, with a keyset cursor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryQuery {
    /// Another site's trail; `None` for the store's own.
    pub site: Option<String>,
    /// Only this domain.
    pub domain: Option<Domain>,
    /// Only this file.
    pub path: Option<String>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    /// Only this change type.
    pub change_type: Option<ChangeKind>,
    /// Include unchanged files.
    pub include_unchanged: bool,
    /// Rows after this one (the previous page's last).
    pub before: Option<HistoryCursor>,
    /// At most this many rows.
    pub limit: i64,
}

/// The audit trail of the store's site: commits and their files, recorded, read and
/// retained.
#[async_trait]
pub trait AuditTrail: Send + Sync {
    /// Records the commits these rows describe (consecutive rows of one commit, domain,
    /// time and run; every file of each), in one transaction, as [`Store::record_full`].
    async fn insert_audit_rows(&self, rows: &[AuditRow]) -> Result<(), StoreError>;
    /// Records, in one transaction, the leading commits that each follow the trail: the
    /// domain's last recorded commit holds the manifest their parent holds, so the
    /// trail's live versions are the parent's files and their changed files are all there
    /// is to write. Returns how many were recorded; the rest must be recorded with every
    /// file ([`Store::record_full`]).
    async fn record_following(&self, commits: &[AuditCommit]) -> Result<usize, StoreError>;
    /// Records commits with every file of each, reconciled against the live versions
    /// (after a gap, a foreign commit, retention), in one transaction.
    async fn record_full(&self, commits: &[AuditCommit]) -> Result<(), StoreError>;
    /// Renames commits rebased onto the remote: (old, new, new parent), in one transaction.
    async fn rewrite_commits(&self, moves: &[(String, String, String)]) -> Result<(), StoreError>;
    /// The site's most recently recorded commit.
    async fn newest_commit(&self) -> Result<Option<String>, StoreError>;
    /// Which of these commits the audit trail records, in one query.
    async fn recorded_commits(&self, commit_hashes: &[String])
    -> Result<std::collections::HashSet<String>, StoreError>;
    /// Whether the audit trail records this commit.
    async fn commit_recorded(&self, commit_hash: &str) -> Result<bool, StoreError> {
        Ok(self
            .recorded_commits(std::slice::from_ref(&commit_hash.to_owned()))
            .await?
            .contains(commit_hash))
    }
    /// A domain's last commit and change.
    async fn domain_summary(&self, domain: Domain) -> Result<Option<DomainSummary>, StoreError>;
    /// Files the trail holds as present in the domain's last commit.
    async fn tracked_files(&self, domain: Domain) -> Result<i64, StoreError>;
    /// The domain's files as the trail holds them now (its versions live after its last
    /// recorded commit, deletions left out): path, SHA-256 of the stored form, and
    /// metadata, by path.
    async fn live_files(&self, domain: Domain) -> Result<Vec<LiveFile>, StoreError>;
    /// History rows, newest first.
    async fn history(&self, query: &HistoryQuery) -> Result<Vec<AuditRow>, StoreError>;
    /// Removes the audit trail older than `cutoff`, for every site: the commits and file
    /// rows before it go (on PostgreSQL, whole monthly partitions, and the rows of the
    /// month the cutoff falls in), and a file still current at the first kept commit of
    /// its domain gets an "unchanged" anchor there, so every kept row of the view stays as
    /// it was. Returns how many commits were removed. The pruned prefix of this site's
    /// chain becomes a checkpoint, signed with `signer` when given.
    async fn delete_audit_rows_before(
        &self,
        cutoff: DateTime<Utc>,
        signer: Option<&crate::signing::Signer>,
    ) -> Result<u64, StoreError>;
    /// Checks the site's hash chain against the audit rows as stored
    /// (`config_audit_chain`): each problem names the link, the commit and what differs.
    /// A checkpoint's signature is checked with `signer`'s key.
    async fn verify_audit_chain(&self, signer: Option<&crate::signing::Signer>) -> Result<ChainReport, StoreError>;
    /// The hash of the site's last chain link (the head a new run's commits name).
    async fn audit_chain_head(&self) -> Result<Option<String>, StoreError>;
}

macro_rules! audit_sql {
    ($store:ident, $db:ty) => {
        #[async_trait]
        impl AuditTrail for $store {
            async fn insert_audit_rows(&self, rows: &[AuditRow]) -> Result<(), StoreError> {
                let commits: Vec<AuditCommit> = record::commits_of(rows)
                    .into_iter()
                    .map(|files| {
                        let h = &files[0];
                        AuditCommit {
                            run_id: h.run_id,
                            backup_date: h.backup_date,
                            domain: h.domain,
                            commit_hash: h.commit_hash.clone(),
                            commit_message: h.commit_message.clone(),
                            previous_hash: h.previous_hash.clone(),
                            backed_up_at: h.backed_up_at,
                            backed_up_by: h.backed_up_by.clone(),
                            manifest: None,
                            parent_manifest: None,
                            files: files.to_vec(),
                        }
                    })
                    .collect();
                self.record_commits(&commits).await
            }
            async fn record_following(&self, commits: &[AuditCommit]) -> Result<usize, StoreError> {
                self.record_following_commits(commits).await
            }
            async fn record_full(&self, commits: &[AuditCommit]) -> Result<(), StoreError> {
                self.record_commits(commits).await
            }
            async fn rewrite_commits(&self, moves: &[(String, String, String)]) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                for (old, new, parent) in moves {
                    let rows = sqlx::query("SELECT seq, previous_hash FROM config_commits WHERE commit_hash = $1 AND site = $2")
                        .bind(old)
                        .bind(&self.site)
                        .fetch_all(&mut *tx)
                        .await?;
                    for r in &rows {
                        let seq: i64 = r.try_get("seq")?;
                        let old_parent: Option<String> = r.try_get("previous_hash")?;
                        sqlx::query("UPDATE config_commits SET commit_hash = $1, previous_hash = $2 WHERE seq = $3 AND site = $4")
                            .bind(new)
                            .bind(parent)
                            .bind(seq)
                            .bind(&self.site)
                            .execute(&mut *tx)
                            .await?;
                        self.chain_rewrite(&mut tx, seq, old, old_parent.as_deref(), new, parent).await?;
                    }
                }
                tx.commit().await?;
                self.wrote_trail();
                Ok(())
            }
            async fn verify_audit_chain(&self, signer: Option<&crate::signing::Signer>) -> Result<ChainReport, StoreError> {
                self.verify_chain(signer).await
            }
            async fn audit_chain_head(&self) -> Result<Option<String>, StoreError> {
                self.chain_head().await
            }
            async fn newest_commit(&self) -> Result<Option<String>, StoreError> {
                let row = sqlx::query("SELECT commit_hash FROM config_commits WHERE site = $1 ORDER BY seq DESC LIMIT 1")
                    .bind(&self.site)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|r| r.try_get("commit_hash")).transpose()?)
            }
            async fn recorded_commits(&self, commit_hashes: &[String]) -> Result<std::collections::HashSet<String>, StoreError> {
                let mut found = std::collections::HashSet::new();
                // Within every backend's limit on bound parameters.
                for chunk in commit_hashes.chunks(500) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT DISTINCT commit_hash FROM config_commits WHERE site = ");
                    qb.push_bind(&self.site).push(" AND commit_hash IN (");
                    let mut list = qb.separated(", ");
                    for hash in chunk {
                        list.push_bind(hash);
                    }
                    qb.push(")");
                    for row in qb.build().fetch_all(&self.pool).await? {
                        found.insert(row.try_get("commit_hash")?);
                    }
                }
                Ok(found)
            }
            async fn domain_summary(&self, domain: Domain) -> Result<Option<DomainSummary>, StoreError> {
                let last = sqlx::query(
                    "SELECT commit_hash, backed_up_at FROM config_commits WHERE site = $1 AND domain = $2 \
                     ORDER BY seq DESC LIMIT 1",
                )
                .bind(&self.site)
                .bind(domain.as_str())
                .fetch_optional(&self.pool)
                .await?;
                let Some(last) = last else { return Ok(None) };
                // The domain's newest changed file first, read backwards along the site's
                // (site, commit_seq) index, then its commit: joined the other way round,
                // every changed row the domain ever had is read and sorted.
                let change = sqlx::query(
                    "SELECT c.commit_hash AS commit_hash, c.backed_up_at AS backed_up_at FROM \
                     (SELECT commit_seq, backed_up_at FROM config_file_changes WHERE site = $1 AND domain = $2 \
                      AND change_type <> 'unchanged' ORDER BY commit_seq DESC LIMIT 1) v \
                     JOIN config_commits c ON c.seq = v.commit_seq AND c.backed_up_at = v.backed_up_at",
                )
                .bind(&self.site)
                .bind(domain.as_str())
                .fetch_optional(&self.pool)
                .await?;
                Ok(Some(DomainSummary {
                    last_commit: last.try_get("commit_hash")?,
                    last_at: last.try_get("backed_up_at")?,
                    last_change_commit: change.as_ref().map(|c| c.try_get("commit_hash")).transpose()?,
                    last_change_at: change.as_ref().map(|c| c.try_get("backed_up_at")).transpose()?,
                }))
            }
            async fn tracked_files(&self, domain: Domain) -> Result<i64, StoreError> {
                Ok(sqlx::query(
                    "SELECT COUNT(*) AS n FROM config_file_changes WHERE site = $1 AND domain = $2 \
                     AND next_seq IS NULL AND change_type <> 'deleted'",
                )
                .bind(&self.site)
                .bind(domain.as_str())
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?)
            }
            async fn live_files(&self, domain: Domain) -> Result<Vec<LiveFile>, StoreError> {
                sqlx::query(
                    "SELECT config_file, file_sha256, file_meta FROM config_file_changes WHERE site = $1 AND domain = $2 \
                     AND next_seq IS NULL AND change_type <> 'deleted' ORDER BY config_file",
                )
                .bind(&self.site)
                .bind(domain.as_str())
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| {
                    Ok(LiveFile {
                        path: r.try_get("config_file")?,
                        sha256: r.try_get::<Option<String>, _>("file_sha256")?.unwrap_or_default(),
                        meta: r.try_get("file_meta")?,
                    })
                })
                .collect()
            }
            async fn history(&self, q: &HistoryQuery) -> Result<Vec<AuditRow>, StoreError> {
                self.history_rows(q).await
            }
            async fn delete_audit_rows_before(
                &self,
                cutoff: DateTime<Utc>,
                signer: Option<&crate::signing::Signer>,
            ) -> Result<u64, StoreError> {
                self.remove_before(cutoff, signer).await
            }
        }
    };
}

audit_sql!(SqliteStore, sqlx::Sqlite);
audit_sql!(PostgresStore, sqlx::Postgres);
