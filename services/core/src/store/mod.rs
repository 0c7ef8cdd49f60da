//! The audit trail behind one trait, with SQLite (the embedded default) and PostgreSQL
//! (production, shared by replicas) implementations. The backend is chosen from the
//! URL scheme; migrations are embedded and applied at connect.

mod audit;
mod sql;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::domain::ChangeKind;
use crate::domain::Domain;

pub use sql::{PostgresStore, SqliteStore};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row holds a value this version does not know.
    #[error("database row: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Why the database failed, in words a NOC can act on and without internals: full,
    /// unreachable, read-only, refusing connections... with the database's own short
    /// reason. `None` for errors that are not about the database's state (a bug, a
    /// constraint), which are logged, not shown.
    pub fn cause(&self) -> Option<String> {
        let short = |s: &str| crate::domain::bounded(s, 200);
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                // SQLite: FULL 13, IOERR 10, READONLY 8, BUSY 5, LOCKED 6, CANTOPEN 14;
                // PostgreSQL: classes 53 (insufficient resources), 57 (operator
                // intervention), 08 (connection), 58 (system error).
                let known = matches!(code.as_str(), "13" | "10" | "8" | "5" | "6" | "14")
                    || ["53", "57", "08", "58"].iter().any(|c| code.starts_with(c))
                    || code.starts_with("13")
                    || code.starts_with("10");
                known.then(|| short(db.message()))
            }
            StoreError::Database(sqlx::Error::Io(e)) => Some(format!("cannot be reached: {}", short(&e.to_string()))),
            StoreError::Database(sqlx::Error::PoolTimedOut) => {
                Some("no connection within the pool's timeout: the database is unreachable or overloaded".to_owned())
            }
            StoreError::Database(sqlx::Error::PoolClosed) => Some("the connection pool is closed".to_owned()),
            StoreError::Database(sqlx::Error::Tls(e)) => Some(format!("TLS: {}", short(&e.to_string()))),
            _ => None,
        }
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The daily schedule.
    Scheduled,
    /// The API.
    Manual,
    /// A rollback recording the new live state.
    Rollback,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Not ended yet.
    Running,
    /// Every domain committed and the push verified.
    Success,
    /// Commits made, but a domain or the push failed.
    Partial,
    /// Nothing committed.
    Failed,
    /// The process stopped during the run.
    Interrupted,
}

/// What became of the push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Pushed and verified.
    Pushed,
    /// Failed; commits kept.
    Failed,
    /// The remote has commits ours do not apply on.
    Diverged,
    /// Not attempted.
    NotAttempted,
}

macro_rules! text_enum {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            /// The name stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $(<$t>::$v => $s),* }
            }
            /// Parses a stored name.
            pub fn parse(s: &str) -> Result<Self, StoreError> {
                match s {
                    $($s => Ok(<$t>::$v),)*
                    other => Err(StoreError::Corrupt(format!("unknown {} {other:?}", stringify!($t)))),
                }
            }
        }
    };
}
text_enum!(Trigger { Scheduled => "scheduled", Manual => "manual", Rollback => "rollback" });
text_enum!(RunOutcome {
    Running => "running",
    Success => "success",
    Partial => "partial",
    Failed => "failed",
    Interrupted => "interrupted",
});
text_enum!(PushOutcome { Pushed => "pushed", Failed => "failed", Diverged => "diverged", NotAttempted => "not_attempted" });
text_enum!(LockKind { Backup => "backup", Rollback => "rollback" });
text_enum!(RollbackStage {
    Pending => "pending",
    Validating => "validating",
    Snapshot => "snapshot",
    Applying => "applying",
    Reloading => "reloading",
    Verifying => "verifying",
    Reverting => "reverting",
    Success => "success",
    Failed => "failed",
});

/// The stages of a rollback, in order; Reverting happens only after a failure past Applying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RollbackStage {
    /// Accepted.
    Pending,
    /// The target files are checked in a staging copy.
    Validating,
    /// The live files are committed and copied aside.
    Snapshot,
    /// The target files are written.
    Applying,
    /// The reload command runs.
    Reloading,
    /// The verify command runs.
    Verifying,
    /// The snapshot is being put back.
    Reverting,
    /// Done, the target is live.
    Success,
    /// Done, failed.
    Failed,
}

impl RollbackStage {
    /// Success or Failed.
    pub fn is_terminal(self) -> bool {
        matches!(self, RollbackStage::Success | RollbackStage::Failed)
    }

    /// The spec's `rollback_status` for the history table.
    pub fn history_status(self) -> &'static str {
        match self {
            RollbackStage::Pending => "pending",
            RollbackStage::Success => "success",
            RollbackStage::Failed => "failed",
            _ => "in_progress",
        }
    }
}

/// One stage of a rollback as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct StageRecord {
    /// The stage.
    pub stage: RollbackStage,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Whether it succeeded.
    pub ok: bool,
    /// What happened.
    pub message: String,
    /// Command output, bounded.
    pub output: String,
}

/// A rollback task as recorded (`config_rollback_tasks` and its stages; one
/// `config_rollback_history` row per domain mirrors it).
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackTask {
    /// The task id.
    pub id: Uuid,
    /// The domains rolled back.
    pub domains: Vec<Domain>,
    /// The target commit.
    pub target_hash: String,
    /// The current state.
    pub state: RollbackStage,
    /// The admin's subject.
    pub requested_by: Uuid,
    /// Why.
    pub reason: String,
    /// When asked.
    pub requested_at: DateTime<Utc>,
    /// When it ended.
    pub completed_at: Option<DateTime<Utc>>,
    /// How long it took.
    pub duration_seconds: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
    /// After a failure past Applying: whether the snapshot was put back.
    pub revert_succeeded: bool,
    /// Warnings.
    pub warnings: Vec<String>,
    /// The snapshot commit of the live files before the rollback.
    pub snapshot_commit: Option<String>,
    /// The host running it.
    pub host: String,
    /// A dry run (never persisted).
    pub dry_run: bool,
    /// Stages so far, in order.
    pub stages: Vec<StageRecord>,
}

/// A run, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// Its id.
    pub id: Uuid,
    /// What started it.
    pub trigger: Trigger,
    /// Who asked ("system" for the schedule).
    pub requested_by: String,
    /// The host that ran it.
    pub host: String,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: Option<DateTime<Utc>>,
    /// Outcome.
    pub outcome: RunOutcome,
    /// Error, if any.
    pub error: Option<String>,
    /// Push outcome, once known.
    pub push_outcome: Option<PushOutcome>,
    /// Push error, if any.
    pub push_error: Option<String>,
    /// Commits not on the remote after the run.
    pub unpushed_commits: i64,
    /// Files added.
    pub files_added: i64,
    /// Files modified.
    pub files_modified: i64,
    /// Files deleted.
    pub files_deleted: i64,
    /// Files unchanged.
    pub files_unchanged: i64,
    /// Commits made.
    pub commits: i64,
}

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

/// What holds the engine lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// A backup run.
    Backup,
    /// A rollback task.
    Rollback,
}

/// The holder of the engine lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    /// Backup or rollback.
    pub kind: LockKind,
    /// The run or task id.
    pub id: Uuid,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The process's random instance id (tells apart a restarted process with the same pid).
    pub instance: String,
    /// Since when.
    pub acquired_at: DateTime<Utc>,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind {
            LockKind::Backup => "backup run",
            LockKind::Rollback => "rollback task",
        };
        write!(
            f,
            "{what} {} (started {} on {} pid {})",
            self.id,
            self.acquired_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.host,
            self.pid
        )
    }
}

/// The result of trying to take the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockAttempt {
    /// Taken; `replaced` is the dead holder it replaced, if any.
    Acquired {
        /// A holder that had died without releasing.
        replaced: Option<LockHolder>,
    },
    /// Held by someone alive.
    Held(LockHolder),
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

/// A mail to the NOC, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct MailRecord {
    /// When it was sent (or tried).
    pub sent_at: DateTime<Utc>,
    /// backup, alert, rollback.
    pub kind: String,
    /// Its subject.
    pub subject: String,
    /// Whether the SMTP server took it.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
}

/// A Diff that showed secrets in clear: who, when, which commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretReveal {
    /// Row id.
    pub id: Uuid,
    /// When.
    pub revealed_at: DateTime<Utc>,
    /// Who (the token's subject).
    pub revealed_by: String,
    /// The older commit.
    pub commit1: String,
    /// The newer commit.
    pub commit2: String,
    /// The domain filter, if any.
    pub domain: Option<Domain>,
    /// The path filter, if any.
    pub path: Option<String>,
}

/// Figures for the Prometheus endpoint, from the audit trail (the same on every replica
/// and across restarts).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Per domain: the time of its last commit made by a successful run.
    pub last_success: Vec<(Domain, DateTime<Utc>)>,
    /// Per domain: files changed in its last commit.
    pub last_changed_files: Vec<(Domain, i64)>,
    /// The last run's duration in seconds.
    pub last_run_duration: Option<f64>,
    /// Runs by outcome.
    pub runs_by_outcome: Vec<(String, i64)>,
    /// Runs whose push failed or diverged.
    pub push_failures: i64,
    /// Finished rollbacks by state (success, failed).
    pub rollbacks_by_outcome: Vec<(String, i64)>,
    /// Sum of the finished rollbacks' durations, in seconds.
    pub rollback_seconds_sum: f64,
    /// Mails that could not be sent.
    pub mail_failures: i64,
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

/// What a server tells the shared database about its site when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteAnnouncement {
    /// The host the server runs on.
    pub host: String,
    /// Whether the daily run is enabled.
    pub schedule_enabled: bool,
    /// Its hour (UTC).
    pub schedule_hour: u32,
    /// Its minute.
    pub schedule_minute: u32,
    /// When.
    pub seen_at: DateTime<Utc>,
}

/// One site of the fleet, as the shared database knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteRecord {
    /// The site's name.
    pub site: String,
    /// What its server announced last.
    pub announced: SiteAnnouncement,
    /// Its last backup run (not a rollback snapshot).
    pub last_run: Option<RunRecord>,
    /// The holder of its engine lock, if any, and its last heartbeat.
    pub lock: Option<(LockHolder, DateTime<Utc>)>,
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

/// The audit trail of one site (the store's own), in a database that may hold many.
/// Every write and every read is the site's, except [`Store::list_sites`], retention
/// (database-wide) and History of an explicit [`HistoryQuery::site`].
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// The backend's name ("sqlite", "postgres").
    fn backend(&self) -> &'static str;
    /// The site this store reads and writes.
    fn site(&self) -> &str;
    /// The same database, seen as another site's store (for reading its trail).
    fn for_site(&self, site: &str) -> Arc<dyn Store>;
    /// Grows with every write this process committed: what it read before is stale when
    /// this has moved (writes by other processes sharing the database are not counted).
    fn write_generation(&self) -> u64;
    /// Records a new run.
    async fn insert_run(&self, run: &RunRecord) -> Result<(), StoreError>;
    /// Updates a run's outcome and counts.
    async fn update_run(&self, run: &RunRecord) -> Result<(), StoreError>;
    /// A run by id.
    async fn run(&self, id: Uuid) -> Result<Option<RunRecord>, StoreError>;
    /// Marks every run still `running`, other than `except`, as interrupted.
    async fn mark_interrupted_runs(&self, except: Uuid, at: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError>;
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
    /// Whether any audit row names this commit.
    async fn commit_recorded(&self, commit_hash: &str) -> Result<bool, StoreError>;
    /// The most recent run.
    async fn last_run(&self) -> Result<Option<RunRecord>, StoreError>;
    /// The most recent successful run.
    async fn last_successful_run(&self) -> Result<Option<RunRecord>, StoreError>;
    /// When a push last succeeded.
    async fn last_push_success(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// A domain's last commit and change.
    async fn domain_summary(&self, domain: Domain) -> Result<Option<DomainSummary>, StoreError>;
    /// Files the trail holds as present in the domain's last commit.
    async fn tracked_files(&self, domain: Domain) -> Result<i64, StoreError>;
    /// History rows, newest first.
    async fn history(&self, query: &HistoryQuery) -> Result<Vec<AuditRow>, StoreError>;
    /// Removes the audit trail older than `cutoff`, for every site: the commits and file
    /// rows before it go (on PostgreSQL, whole monthly partitions, and the rows of the
    /// month the cutoff falls in), and a file still current at the first kept commit of
    /// its domain gets an "unchanged" anchor there, so every kept row of the view stays as
    /// it was. Returns how many commits were removed.
    async fn delete_audit_rows_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Records (or refreshes) this site's announcement.
    async fn announce_site(&self, site: &SiteAnnouncement) -> Result<(), StoreError>;
    /// Every announced site with its last run and lock, by name.
    async fn list_sites(&self) -> Result<Vec<SiteRecord>, StoreError>;
    /// What `site`'s server announced, if any did.
    async fn announcement(&self, site: &str) -> Result<Option<SiteAnnouncement>, StoreError>;
    /// Tries to take the engine lock. A holder whose heartbeat is older than `ttl`, or
    /// whose process on this host is gone, is replaced.
    async fn try_lock(&self, holder: &LockHolder, ttl: std::time::Duration) -> Result<LockAttempt, StoreError>;
    /// Renews the heartbeat; false if the lock is no longer ours.
    async fn renew_lock(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError>;
    /// Releases the lock if ours.
    async fn release_lock(&self, id: Uuid) -> Result<(), StoreError>;
    /// The current holder, if any, and when it last renewed the lock.
    async fn lock_holder(&self) -> Result<Option<(LockHolder, DateTime<Utc>)>, StoreError>;
    /// Records a new rollback task and its history rows (pending), in one transaction.
    async fn insert_rollback_task(&self, task: &RollbackTask) -> Result<(), StoreError>;
    /// Saves a task's state and stages and mirrors them in its history rows. With
    /// `release`, the engine lock held under that id is released in the same transaction, so
    /// nobody sees a finished task while its lock is still held (or the lock gone while the
    /// task still looks unfinished).
    async fn save_rollback_task(&self, task: &RollbackTask, release: Option<Uuid>) -> Result<(), StoreError>;
    /// A task with its stages.
    async fn rollback_task(&self, id: Uuid) -> Result<Option<RollbackTask>, StoreError>;
    /// Tasks that have not reached a terminal state.
    async fn unfinished_rollback_tasks(&self) -> Result<Vec<RollbackTask>, StoreError>;
    /// Records a mail attempt.
    async fn record_mail(&self, mail: &MailRecord) -> Result<(), StoreError>;
    /// The latest mail attempt.
    async fn last_mail(&self) -> Result<Option<MailRecord>, StoreError>;
    /// Records why domains of a run failed.
    async fn record_domain_errors(&self, run_id: Uuid, errors: &[(Domain, String)]) -> Result<(), StoreError>;
    /// Why domains of a run failed.
    async fn domain_errors(&self, run_id: Uuid) -> Result<Vec<(Domain, String)>, StoreError>;
    /// Records a Diff that revealed secrets.
    async fn record_secret_reveal(&self, reveal: &SecretReveal) -> Result<(), StoreError>;
    /// The latest reveals, newest first.
    async fn secret_reveals(&self, limit: i64) -> Result<Vec<SecretReveal>, StoreError>;
    /// The latest backup runs (not rollback snapshots), newest first.
    async fn recent_runs(&self, limit: i64) -> Result<Vec<RunRecord>, StoreError>;
    /// Figures for `/metrics`.
    async fn metrics(&self) -> Result<MetricsSnapshot, StoreError>;
    /// Whether the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

pub use crate::domain::DEFAULT_SITE;

/// Connects to `url` (`sqlite:` or `postgres://`) as `site`'s store, and applies
/// migrations.
pub async fn connect(url: &str, site: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(url, site).await?))
    } else {
        Ok(Arc::new(SqliteStore::connect(url, site).await?))
    }
}

/// Whether a process with this pid runs on this host.
/// Whether a lock holder is alive, as `me` (another holder, or this process) sees it: it
/// renewed the lock within `ttl`, and, on `me`'s host, its process exists and is not an
/// earlier instance under `me`'s pid (a restarted container is PID 1 again).
pub fn holder_alive(
    holder: &LockHolder,
    heartbeat: DateTime<Utc>,
    ttl: std::time::Duration,
    now: DateTime<Utc>,
    me: &LockHolder,
) -> bool {
    let expired = now.signed_duration_since(heartbeat).to_std().unwrap_or_default() > ttl;
    let dead = holder.host == me.host
        && holder.instance != me.instance
        && (holder.pid == me.pid || !process_alive(holder.pid));
    !(expired || dead)
}

pub(crate) fn process_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// This process's instance id, random per start.
pub fn instance() -> &'static str {
    static INSTANCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    INSTANCE.get_or_init(|| Uuid::new_v4().simple().to_string())
}

/// This host's name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
