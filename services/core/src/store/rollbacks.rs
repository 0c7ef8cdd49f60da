//! Rollback tasks: the task row, its stages, and the per-domain history rows that mirror
//! it.

use super::*;

fn domains_text(domains: &[Domain]) -> String {
    domains.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(",")
}

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
    /// The request id of the call that asked for it.
    pub request_id: Option<String>,
}

/// The site's rollback tasks.
#[async_trait]
pub trait RollbackTasks: Send + Sync {
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
}

macro_rules! rollbacks_sql {
    ($store:ident, $db:ty) => {
        impl $store {
            pub(in crate::store) fn task_from_row(row: &<$db as sqlx::Database>::Row) -> Result<RollbackTask, StoreError> {
                let domains: String = row.try_get("domains")?;
                let warnings: String = row.try_get("warnings")?;
                Ok(RollbackTask {
                    id: row.try_get("id")?,
                    domains: domains
                        .split(',')
                        .filter(|d| !d.is_empty())
                        .map(|d| d.parse().map_err(|e: crate::domain::UnknownDomain| StoreError::Corrupt(e.to_string())))
                        .collect::<Result<_, _>>()?,
                    target_hash: row.try_get("target_hash")?,
                    state: RollbackStage::parse(row.try_get::<String, _>("state")?.as_str())?,
                    requested_by: row.try_get("requested_by")?,
                    reason: row.try_get("reason")?,
                    requested_at: row.try_get("requested_at")?,
                    completed_at: row.try_get("completed_at")?,
                    duration_seconds: row.try_get("duration_seconds")?,
                    error: row.try_get("error")?,
                    revert_succeeded: row.try_get("revert_succeeded")?,
                    warnings: warnings.lines().map(str::to_owned).collect(),
                    snapshot_commit: row.try_get("snapshot_commit")?,
                    host: row.try_get("host")?,
                    dry_run: false,
                    stages: Vec::new(),
                    request_id: row.try_get("request_id")?,
                })
            }
        }

        #[async_trait]
        impl RollbackTasks for $store {
            async fn insert_rollback_task(&self, task: &RollbackTask) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO config_rollback_tasks (id, domains, target_hash, state, requested_by, reason, \
                     requested_at, completed_at, duration_seconds, error, revert_succeeded, warnings, snapshot_commit, host, site, \
                     request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                )
                .bind(task.id)
                .bind(domains_text(&task.domains))
                .bind(&task.target_hash)
                .bind(task.state.as_str())
                .bind(task.requested_by)
                .bind(&task.reason)
                .bind(micros(task.requested_at))
                .bind(task.completed_at.map(micros))
                .bind(task.duration_seconds)
                .bind(&task.error)
                .bind(task.revert_succeeded)
                .bind(task.warnings.join("\n"))
                .bind(&task.snapshot_commit)
                .bind(&task.host)
                .bind(&self.site)
                .bind(&task.request_id)
                .execute(&mut *tx)
                .await?;
                for d in &task.domains {
                    sqlx::query(
                        "INSERT INTO config_rollback_history (id, requested_at, requested_by, domain, target_hash, \
                         rollback_status, completed_at, reason, duration_seconds, task_id) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    )
                    .bind(Uuid::new_v4())
                    .bind(micros(task.requested_at))
                    .bind(task.requested_by)
                    .bind(d.as_str())
                    .bind(&task.target_hash)
                    .bind(task.state.history_status())
                    .bind(task.completed_at.map(micros))
                    .bind(&task.reason)
                    .bind(task.duration_seconds)
                    .bind(task.id)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                self.wrote();
                Ok(())
            }
            async fn save_rollback_task(&self, task: &RollbackTask, release: Option<Uuid>) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "UPDATE config_rollback_tasks SET state = $1, completed_at = $2, duration_seconds = $3, error = $4, \
                     revert_succeeded = $5, warnings = $6, snapshot_commit = $7 WHERE id = $8",
                )
                .bind(task.state.as_str())
                .bind(task.completed_at.map(micros))
                .bind(task.duration_seconds)
                .bind(&task.error)
                .bind(task.revert_succeeded)
                .bind(task.warnings.join("\n"))
                .bind(&task.snapshot_commit)
                .bind(task.id)
                .execute(&mut *tx)
                .await?;
                for (seq, st) in task.stages.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO config_rollback_stages (task_id, seq, stage, started_at, finished_at, ok, message, output) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (task_id, seq) DO UPDATE SET \
                         finished_at = excluded.finished_at, ok = excluded.ok, message = excluded.message, \
                         output = excluded.output",
                    )
                    .bind(task.id)
                    .bind(seq as i32)
                    .bind(st.stage.as_str())
                    .bind(micros(st.started_at))
                    .bind(st.finished_at.map(micros))
                    .bind(st.ok)
                    .bind(&st.message)
                    .bind(&st.output)
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query(
                    "UPDATE config_rollback_history SET rollback_status = $1, completed_at = $2, duration_seconds = $3 \
                     WHERE task_id = $4",
                )
                .bind(task.state.history_status())
                .bind(task.completed_at.map(micros))
                .bind(task.duration_seconds)
                .bind(task.id)
                .execute(&mut *tx)
                .await?;
                self.commit_releasing(tx, release).await
            }
            async fn rollback_task(&self, id: Uuid) -> Result<Option<RollbackTask>, StoreError> {
                let Some(row) = sqlx::query("SELECT * FROM config_rollback_tasks WHERE id = $1 AND site = $2")
                    .bind(id)
                    .bind(&self.site)
                    .fetch_optional(&self.pool)
                    .await?
                else {
                    return Ok(None);
                };
                let mut task = Self::task_from_row(&row)?;
                let stages = sqlx::query("SELECT * FROM config_rollback_stages WHERE task_id = $1 ORDER BY seq")
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?;
                for st in &stages {
                    task.stages.push(StageRecord {
                        stage: RollbackStage::parse(st.try_get::<String, _>("stage")?.as_str())?,
                        started_at: st.try_get("started_at")?,
                        finished_at: st.try_get("finished_at")?,
                        ok: st.try_get("ok")?,
                        message: st.try_get("message")?,
                        output: st.try_get("output")?,
                    });
                }
                Ok(Some(task))
            }
            async fn unfinished_rollback_tasks(&self) -> Result<Vec<RollbackTask>, StoreError> {
                let ids = sqlx::query("SELECT id FROM config_rollback_tasks WHERE site = $1 AND state NOT IN ('success', 'failed')")
                    .bind(&self.site)
                    .fetch_all(&self.pool)
                    .await?;
                let mut out = Vec::new();
                for r in &ids {
                    if let Some(t) = self.rollback_task(r.try_get("id")?).await? {
                        out.push(t);
                    }
                }
                Ok(out)
            }
        }
    };
}

rollbacks_sql!(SqliteStore, sqlx::Sqlite);
rollbacks_sql!(PostgresStore, sqlx::Postgres);
