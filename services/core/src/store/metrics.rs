//! The figures of `/metrics`, computed from the audit trail (the same on every replica
//! and across restarts).

use super::*;

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

/// Figures for the Prometheus endpoint.
#[async_trait]
pub trait Metrics: Send + Sync {
    /// Figures for `/metrics`.
    async fn metrics(&self) -> Result<MetricsSnapshot, StoreError>;
}

macro_rules! metrics_sql {
    ($store:ident, $db:ty) => {
        #[async_trait]
        impl Metrics for $store {
            async fn metrics(&self) -> Result<MetricsSnapshot, StoreError> {
                let mut m = MetricsSnapshot::default();
                let domain = |r: &<$db as sqlx::Database>::Row| -> Result<Domain, StoreError> {
                    let d: String = r.try_get("domain")?;
                    d.parse().map_err(|e: crate::domain::UnknownDomain| StoreError::Corrupt(e.to_string()))
                };
                let rows = sqlx::query(
                    "SELECT c.domain AS domain, MAX(c.backed_up_at) AS at FROM config_commits c \
                     JOIN config_backup_runs r ON r.id = c.run_id WHERE c.site = $1 AND r.outcome = 'success' \
                     GROUP BY c.domain",
                )
                .bind(&self.site)
                .fetch_all(&self.pool)
                .await?;
                for r in &rows {
                    m.last_success.push((domain(r)?, r.try_get("at")?));
                }
                let rows = sqlx::query(
                    "SELECT c.domain AS domain, (SELECT COUNT(*) FROM config_file_changes v \
                     WHERE v.commit_seq = c.seq AND v.change_type <> 'unchanged') AS changed FROM config_commits c \
                     WHERE c.seq IN (SELECT MAX(seq) FROM config_commits WHERE site = $1 GROUP BY domain)",
                )
                .bind(&self.site)
                .fetch_all(&self.pool)
                .await?;
                for r in &rows {
                    m.last_changed_files.push((domain(r)?, r.try_get::<Option<i64>, _>("changed")?.unwrap_or(0)));
                }
                if let Some(run) = self.last_run().await?
                    && let Some(f) = run.finished_at
                {
                    m.last_run_duration = Some((f - run.started_at).num_microseconds().unwrap_or(0) as f64 / 1e6);
                }
                let rows = sqlx::query("SELECT outcome, COUNT(*) AS n FROM config_backup_runs WHERE site = $1 AND trigger <> 'rollback' GROUP BY outcome")
                    .bind(&self.site)
                    .fetch_all(&self.pool)
                    .await?;
                for r in &rows {
                    m.runs_by_outcome.push((r.try_get("outcome")?, r.try_get("n")?));
                }
                m.push_failures = sqlx::query(
                    "SELECT COUNT(*) AS n FROM config_backup_runs WHERE site = $1 AND push_outcome IN ('failed', 'diverged')",
                )
                .bind(&self.site)
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?;
                let rows = sqlx::query(
                    "SELECT state, COUNT(*) AS n, SUM(duration_seconds) AS d FROM config_rollback_tasks \
                     WHERE site = $1 AND state IN ('success', 'failed') GROUP BY state",
                )
                .bind(&self.site)
                .fetch_all(&self.pool)
                .await?;
                for r in &rows {
                    m.rollbacks_by_outcome.push((r.try_get("state")?, r.try_get("n")?));
                    m.rollback_seconds_sum += r.try_get::<Option<f64>, _>("d")?.unwrap_or(0.0);
                }
                m.mail_failures = sqlx::query("SELECT COUNT(*) AS n FROM config_backup_mail WHERE site = $1 AND ok = $2")
                    .bind(&self.site)
                    .bind(false)
                    .fetch_one(&self.pool)
                    .await?
                    .try_get("n")?;
                Ok(m)
            }
        }
    };
}

metrics_sql!(SqliteStore, sqlx::Sqlite);
metrics_sql!(PostgresStore, sqlx::Postgres);
