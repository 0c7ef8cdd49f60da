//! Runs: one row per backup (and per rollback's own run), its outcome, push and counts,
//! and the domains that failed in it.

use super::*;

pub(super) const RUN_COLUMNS: &str = "id, trigger, requested_by, host, started_at, finished_at, outcome, error, push_outcome, \
     push_error, unpushed_commits, files_added, files_modified, files_deleted, files_unchanged, commits, request_id";

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

text_enum!(Trigger { Scheduled => "scheduled", Manual => "manual", Rollback => "rollback" });

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

text_enum!(RunOutcome {
    Running => "running",
    Success => "success",
    Partial => "partial",
    Failed => "failed",
    Interrupted => "interrupted",
});

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

text_enum!(PushOutcome { Pushed => "pushed", Failed => "failed", Diverged => "diverged", NotAttempted => "not_attempted" });

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
    /// The request id of the call that started it (none for a run of the schedule's own).
    pub request_id: Option<String>,
}

/// The runs of the store's site.
#[async_trait]
pub trait Runs: Send + Sync {
    /// Records a new run.
    async fn insert_run(&self, run: &RunRecord) -> Result<(), StoreError>;
    /// Starts a run in one transaction: takes the engine lock for `lock` when given (the
    /// lock must be free: `None` when it is held, and nothing is written), marks every
    /// other run still `running` as interrupted, and inserts the run. Returns the runs
    /// marked. One commit, one flush, where taking the lock and recording the start were
    /// two.
    async fn start_run(&self, run: &RunRecord, lock: Option<&LockHolder>) -> Result<Option<Vec<Uuid>>, StoreError>;
    /// Updates a run's outcome and counts.
    async fn update_run(&self, run: &RunRecord) -> Result<(), StoreError>;
    /// Records a run's end ([`Runs::update_run`]) and, in the same transaction, releases
    /// the engine lock held under `release` (if this site's lock is still its).
    async fn finish_run(&self, run: &RunRecord, release: Option<Uuid>) -> Result<(), StoreError>;
    /// A run by id.
    async fn run(&self, id: Uuid) -> Result<Option<RunRecord>, StoreError>;
    /// The most recent run.
    async fn last_run(&self) -> Result<Option<RunRecord>, StoreError>;
    /// The most recent successful run.
    async fn last_successful_run(&self) -> Result<Option<RunRecord>, StoreError>;
    /// When a push last succeeded.
    async fn last_push_success(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// The latest backup runs (not rollback snapshots), newest first.
    async fn recent_runs(&self, limit: i64) -> Result<Vec<RunRecord>, StoreError>;
    /// Records why domains of a run failed.
    async fn record_domain_errors(&self, run_id: Uuid, errors: &[(Domain, String)]) -> Result<(), StoreError>;
    /// Why domains of a run failed.
    async fn domain_errors(&self, run_id: Uuid) -> Result<Vec<(Domain, String)>, StoreError>;
}

/// Binds a run's outcome columns, from `finished_at` to `commits` in [`RUN_COLUMNS`]
/// order (an insert writes them after the run's identity, an update sets them).
macro_rules! bind_outcome {
    ($query:expr, $run:expr) => {
        $query
            .bind($run.finished_at.map(micros))
            .bind($run.outcome.as_str())
            .bind(&$run.error)
            .bind($run.push_outcome.map(|p| p.as_str()))
            .bind(&$run.push_error)
            .bind($run.unpushed_commits)
            .bind($run.files_added)
            .bind($run.files_modified)
            .bind($run.files_deleted)
            .bind($run.files_unchanged)
            .bind($run.commits)
    };
}

/// A run's end: outcome, counts and push (binds: [`bind_outcome`], then id and site).
const UPDATE_RUN: &str = "UPDATE config_backup_runs SET finished_at = $1, outcome = $2, error = $3, \
     push_outcome = $4, push_error = $5, unpushed_commits = $6, files_added = $7, files_modified = $8, \
     files_deleted = $9, files_unchanged = $10, commits = $11 WHERE id = $12 AND site = $13";

macro_rules! runs_sql {
    ($store:ident, $db:ty) => {
        impl $store {
            pub(in crate::store) fn run_from_row(row: &<$db as sqlx::Database>::Row) -> Result<RunRecord, StoreError> {
                Ok(RunRecord {
                    id: row.try_get("id")?,
                    trigger: Trigger::parse(row.try_get::<String, _>("trigger")?.as_str())?,
                    requested_by: row.try_get("requested_by")?,
                    host: row.try_get("host")?,
                    started_at: row.try_get("started_at")?,
                    finished_at: row.try_get("finished_at")?,
                    outcome: RunOutcome::parse(row.try_get::<String, _>("outcome")?.as_str())?,
                    error: row.try_get("error")?,
                    push_outcome: row
                        .try_get::<Option<String>, _>("push_outcome")?
                        .map(|s| PushOutcome::parse(&s))
                        .transpose()?,
                    push_error: row.try_get("push_error")?,
                    unpushed_commits: row.try_get("unpushed_commits")?,
                    files_added: row.try_get("files_added")?,
                    files_modified: row.try_get("files_modified")?,
                    files_deleted: row.try_get("files_deleted")?,
                    files_unchanged: row.try_get("files_unchanged")?,
                    commits: row.try_get("commits")?,
                    request_id: row.try_get("request_id")?,
                })
            }
            async fn insert_run_with<'e, E>(&self, executor: E, run: &RunRecord) -> Result<(), StoreError>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                let sql = format!(
                    "INSERT INTO config_backup_runs ({RUN_COLUMNS}, site) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
                );
                let query = sqlx::query(&sql)
                    .bind(run.id)
                    .bind(run.trigger.as_str())
                    .bind(&run.requested_by)
                    .bind(&run.host)
                    .bind(micros(run.started_at));
                bind_outcome!(query, run)
                    .bind(&run.request_id)
                    .bind(&self.site)
                    .execute(executor)
                    .await?;
                Ok(())
            }
            async fn mark_interrupted_with<'e, E>(
                &self,
                executor: E,
                except: Uuid,
                at: DateTime<Utc>,
            ) -> Result<Vec<Uuid>, StoreError>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                let rows = sqlx::query(
                    "UPDATE config_backup_runs SET outcome = $1, finished_at = $2, \
                     error = $3 WHERE outcome = $4 AND id <> $5 AND site = $6 RETURNING id",
                )
                .bind(RunOutcome::Interrupted.as_str())
                .bind(micros(at))
                .bind("interrupted: the server stopped during this run; its commits were recovered by the next run")
                .bind(RunOutcome::Running.as_str())
                .bind(except)
                .bind(&self.site)
                .fetch_all(executor)
                .await?;
                rows.iter()
                    .map(|r| r.try_get::<Uuid, _>("id").map_err(StoreError::from))
                    .collect()
            }
            pub(in crate::store) async fn fetch_run(&self, sql: &str) -> Result<Option<RunRecord>, StoreError> {
                let row = sqlx::query(sql)
                    .bind(&self.site)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::run_from_row).transpose()
            }
        }

        #[async_trait]
        impl Runs for $store {
            async fn insert_run(&self, run: &RunRecord) -> Result<(), StoreError> {
                self.insert_run_with(&self.pool, run).await?;
                self.wrote();
                Ok(())
            }
            async fn start_run(
                &self,
                run: &RunRecord,
                lock: Option<&LockHolder>,
            ) -> Result<Option<Vec<Uuid>>, StoreError> {
                let mut tx = self.begin_write().await?;
                if let Some(holder) = lock
                    && !self.insert_lock_with(&mut *tx, holder).await?
                {
                    // Held: nothing written.
                    tx.rollback().await?;
                    return Ok(None);
                }
                let interrupted = self
                    .mark_interrupted_with(&mut *tx, run.id, run.started_at)
                    .await?;
                self.insert_run_with(&mut *tx, run).await?;
                tx.commit().await?;
                self.wrote();
                Ok(Some(interrupted))
            }
            async fn update_run(&self, run: &RunRecord) -> Result<(), StoreError> {
                let query = sqlx::query(UPDATE_RUN);
                bind_outcome!(query, run)
                    .bind(run.id)
                    .bind(&self.site)
                    .execute(&self.pool)
                    .await?;
                self.wrote();
                Ok(())
            }
            async fn finish_run(&self, run: &RunRecord, release: Option<Uuid>) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                let query = sqlx::query(UPDATE_RUN);
                bind_outcome!(query, run)
                    .bind(run.id)
                    .bind(&self.site)
                    .execute(&mut *tx)
                    .await?;
                self.commit_releasing(tx, release).await
            }
            async fn run(&self, id: Uuid) -> Result<Option<RunRecord>, StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {RUN_COLUMNS} FROM config_backup_runs WHERE id = $1 AND site = $2"
                ))
                .bind(id)
                .bind(&self.site)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::run_from_row).transpose()
            }
            async fn last_run(&self) -> Result<Option<RunRecord>, StoreError> {
                self.fetch_run(&format!(
                    "SELECT {RUN_COLUMNS} FROM config_backup_runs WHERE site = $1 AND trigger <> 'rollback' \
                     ORDER BY started_at DESC LIMIT 1"
                ))
                .await
            }
            async fn last_successful_run(&self) -> Result<Option<RunRecord>, StoreError> {
                self.fetch_run(&format!(
                    "SELECT {RUN_COLUMNS} FROM config_backup_runs WHERE site = $1 AND outcome = 'success' \
                     AND trigger <> 'rollback' ORDER BY started_at DESC LIMIT 1"
                ))
                .await
            }
            async fn last_push_success(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
                let row = sqlx::query(
                    "SELECT finished_at FROM config_backup_runs WHERE site = $1 AND push_outcome = 'pushed' \
                     ORDER BY started_at DESC LIMIT 1",
                )
                .bind(&self.site)
                .fetch_optional(&self.pool)
                .await?;
                Ok(match row {
                    Some(r) => r.try_get("finished_at")?,
                    None => None,
                })
            }
            async fn recent_runs(&self, limit: i64) -> Result<Vec<RunRecord>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {RUN_COLUMNS} FROM config_backup_runs WHERE site = $1 AND trigger <> 'rollback' \
                     ORDER BY started_at DESC LIMIT $2"
                ))
                .bind(&self.site)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::run_from_row).collect()
            }
            async fn record_domain_errors(&self, run_id: Uuid, errors: &[(Domain, String)]) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                for (domain, error) in errors {
                    sqlx::query("INSERT INTO config_backup_domain_errors (run_id, domain, error) VALUES ($1, $2, $3)")
                        .bind(run_id)
                        .bind(domain.as_str())
                        .bind(error)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                self.wrote();
                Ok(())
            }
            async fn domain_errors(&self, run_id: Uuid) -> Result<Vec<(Domain, String)>, StoreError> {
                let rows = sqlx::query(
                    "SELECT domain, error FROM config_backup_domain_errors WHERE run_id = $1 ORDER BY domain",
                )
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        let d: String = r.try_get("domain")?;
                        let d = d
                            .parse()
                            .map_err(|e: crate::domain::UnknownDomain| StoreError::Corrupt(e.to_string()))?;
                        Ok((d, r.try_get("error")?))
                    })
                    .collect()
            }
        }
    };
}

runs_sql!(SqliteStore, sqlx::Sqlite);
runs_sql!(PostgresStore, sqlx::Postgres);
