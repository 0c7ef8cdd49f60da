//! One SQL text for both backends. Both accept `$N` placeholders (each used once, in
//! order), every time is bound from Rust (no `now()`), and rows are read by column
//! name; the macro instantiates the implementation for each pool type.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::*;

const RUN_COLUMNS: &str = "id, trigger, requested_by, host, started_at, finished_at, outcome, error, push_outcome, \
     push_error, unpushed_commits, files_added, files_modified, files_deleted, files_unchanged, commits";

fn domains_text(domains: &[Domain]) -> String {
    domains.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(",")
}

/// Stored times are truncated to microseconds, the precision both backends keep.
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

macro_rules! sql_store {
    ($name:ident, $db:ty, $pool:ty, $backend:literal) => {
        /// The audit trail on this backend, as one site sees it.
        #[derive(Debug, Clone)]
        pub struct $name {
            pool: $pool,
            site: String,
            writes: std::sync::Arc<std::sync::atomic::AtomicU64>,
            /// Months whose partitions exist (PostgreSQL).
            months: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<chrono::NaiveDate>>>,
        }

        impl $name {
            fn new(pool: $pool, site: &str) -> Self {
                $name { pool, site: site.to_owned(), writes: Default::default(), months: Default::default() }
            }

            /// Counts a committed write (see [`Store::write_generation`]).
            fn wrote(&self) {
                self.writes.fetch_add(1, std::sync::atomic::Ordering::Release);
            }

            /// The pool, for tests and maintenance.
            pub fn pool(&self) -> &$pool {
                &self.pool
            }

            fn run_from_row(row: &<$db as sqlx::Database>::Row) -> Result<RunRecord, StoreError> {
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
                })
            }

            fn announcement_from_row(r: &<$db as sqlx::Database>::Row) -> Result<SiteAnnouncement, StoreError> {
                Ok(SiteAnnouncement {
                    host: r.try_get("announced_host")?,
                    schedule_enabled: r.try_get("schedule_enabled")?,
                    schedule_hour: u32::try_from(r.try_get::<i32, _>("schedule_hour")?).unwrap_or(0).min(23),
                    schedule_minute: u32::try_from(r.try_get::<i32, _>("schedule_minute")?).unwrap_or(0).min(59),
                    seen_at: r.try_get("seen_at")?,
                })
            }

            fn lock_from_row(row: &<$db as sqlx::Database>::Row) -> Result<(LockHolder, DateTime<Utc>), StoreError> {
                let holder = LockHolder {
                    kind: LockKind::parse(row.try_get::<String, _>("holder_kind")?.as_str())?,
                    id: row.try_get("holder_id")?,
                    host: row.try_get("host")?,
                    pid: u32::try_from(row.try_get::<i64, _>("pid")?).unwrap_or(0),
                    instance: row.try_get("instance")?,
                    acquired_at: row.try_get("acquired_at")?,
                };
                Ok((holder, row.try_get("heartbeat_at")?))
            }

            fn task_from_row(row: &<$db as sqlx::Database>::Row) -> Result<RollbackTask, StoreError> {
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
                })
            }

            async fn current_lock(&self) -> Result<Option<(LockHolder, DateTime<Utc>)>, StoreError> {
                let row = sqlx::query(
                    "SELECT holder_kind, holder_id, host, pid, instance, acquired_at, heartbeat_at FROM engine_lock WHERE name = $1",
                )
                .bind(&self.site)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::lock_from_row).transpose()
            }

            async fn insert_lock(&self, holder: &LockHolder) -> Result<bool, StoreError> {
                let now = micros(Utc::now());
                let done = sqlx::query(
                    "INSERT INTO engine_lock (name, holder_kind, holder_id, host, pid, instance, acquired_at, heartbeat_at, site) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (name) DO NOTHING",
                )
                .bind(&self.site)
                .bind(holder.kind.as_str())
                .bind(holder.id)
                .bind(&holder.host)
                .bind(i64::from(holder.pid))
                .bind(&holder.instance)
                .bind(micros(holder.acquired_at))
                .bind(now)
                .bind(&self.site)
                .execute(&self.pool)
                .await?;
                self.wrote();
                Ok(done.rows_affected() == 1)
            }

            async fn fetch_run(&self, sql: &str) -> Result<Option<RunRecord>, StoreError> {
                let row = sqlx::query(sql).bind(&self.site).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::run_from_row).transpose()
            }
        }

        #[async_trait]
        impl Store for $name {
            fn backend(&self) -> &'static str {
                $backend
            }

            fn site(&self) -> &str {
                &self.site
            }

            fn for_site(&self, site: &str) -> Arc<dyn Store> {
                Arc::new($name { site: site.to_owned(), writes: Default::default(), ..self.clone() })
            }

            fn write_generation(&self) -> u64 {
                self.writes.load(std::sync::atomic::Ordering::Acquire)
            }

            async fn insert_run(&self, run: &RunRecord) -> Result<(), StoreError> {
                sqlx::query(&format!(
                    "INSERT INTO config_backup_runs ({RUN_COLUMNS}, site) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
                ))
                .bind(run.id)
                .bind(run.trigger.as_str())
                .bind(&run.requested_by)
                .bind(&run.host)
                .bind(micros(run.started_at))
                .bind(run.finished_at.map(micros))
                .bind(run.outcome.as_str())
                .bind(&run.error)
                .bind(run.push_outcome.map(|p| p.as_str()))
                .bind(&run.push_error)
                .bind(run.unpushed_commits)
                .bind(run.files_added)
                .bind(run.files_modified)
                .bind(run.files_deleted)
                .bind(run.files_unchanged)
                .bind(run.commits)
                .bind(&self.site)
                .execute(&self.pool)
                .await?;
                self.wrote();
                Ok(())
            }

            async fn update_run(&self, run: &RunRecord) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE config_backup_runs SET finished_at = $1, outcome = $2, error = $3, push_outcome = $4, \
                     push_error = $5, unpushed_commits = $6, files_added = $7, files_modified = $8, \
                     files_deleted = $9, files_unchanged = $10, commits = $11 WHERE id = $12 AND site = $13",
                )
                .bind(run.finished_at.map(micros))
                .bind(run.outcome.as_str())
                .bind(&run.error)
                .bind(run.push_outcome.map(|p| p.as_str()))
                .bind(&run.push_error)
                .bind(run.unpushed_commits)
                .bind(run.files_added)
                .bind(run.files_modified)
                .bind(run.files_deleted)
                .bind(run.files_unchanged)
                .bind(run.commits)
                .bind(run.id)
                .bind(&self.site)
                .execute(&self.pool)
                .await?;
                self.wrote();
                Ok(())
            }

            async fn run(&self, id: Uuid) -> Result<Option<RunRecord>, StoreError> {
                let row = sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM config_backup_runs WHERE id = $1 AND site = $2"))
                    .bind(id)
                    .bind(&self.site)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::run_from_row).transpose()
            }

            async fn mark_interrupted_runs(&self, except: Uuid, at: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError> {
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
                .fetch_all(&self.pool)
                .await?;
                self.wrote();
                rows.iter().map(|r| r.try_get::<Uuid, _>("id").map_err(StoreError::from)).collect()
            }

            async fn insert_audit_rows(&self, rows: &[AuditRow]) -> Result<(), StoreError> {
                let commits: Vec<AuditCommit> = audit::commits_of(rows)
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
                let mut tx = self.pool.begin().await?;
                for (old, new, parent) in moves {
                    sqlx::query(
                        "UPDATE config_commits SET commit_hash = $1, previous_hash = $2 WHERE commit_hash = $3 AND site = $4",
                    )
                    .bind(new)
                    .bind(parent)
                    .bind(old)
                    .bind(&self.site)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                self.wrote();
                Ok(())
            }

            async fn newest_commit(&self) -> Result<Option<String>, StoreError> {
                let row = sqlx::query("SELECT commit_hash FROM config_commits WHERE site = $1 ORDER BY seq DESC LIMIT 1")
                    .bind(&self.site)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|r| r.try_get("commit_hash")).transpose()?)
            }

            async fn commit_recorded(&self, commit_hash: &str) -> Result<bool, StoreError> {
                let row = sqlx::query("SELECT 1 AS one FROM config_commits WHERE commit_hash = $1 AND site = $2 LIMIT 1")
                    .bind(commit_hash)
                    .bind(&self.site)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.is_some())
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

            async fn history(&self, q: &HistoryQuery) -> Result<Vec<AuditRow>, StoreError> {
                self.history_rows(q).await
            }

            async fn delete_audit_rows_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
                self.remove_before(cutoff).await
            }

            async fn announce_site(&self, a: &SiteAnnouncement) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO config_backup_sites (site, host, schedule_enabled, schedule_hour, schedule_minute, seen_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (site) DO UPDATE SET host = excluded.host, \
                     schedule_enabled = excluded.schedule_enabled, schedule_hour = excluded.schedule_hour, \
                     schedule_minute = excluded.schedule_minute, seen_at = excluded.seen_at",
                )
                .bind(&self.site)
                .bind(&a.host)
                .bind(a.schedule_enabled)
                .bind(a.schedule_hour as i32)
                .bind(a.schedule_minute as i32)
                .bind(micros(a.seen_at))
                .execute(&self.pool)
                .await?;
                self.wrote();
                Ok(())
            }

            async fn list_sites(&self) -> Result<Vec<SiteRecord>, StoreError> {
                // One query: each site with its last backup run, an index probe per site
                // (never a pass over every run the fleet has made). PostgreSQL takes the
                // probe as a lateral join; given `r.id = (subquery)` it hashes the whole
                // runs table instead. SQLite has no LATERAL and probes by id.
                let run_columns: Vec<String> = RUN_COLUMNS.split(", ").map(|c| format!("r.{c} AS {c}")).collect();
                let last = "FROM config_backup_runs x WHERE x.site = s.site AND x.trigger <> 'rollback' \
                            ORDER BY x.started_at DESC LIMIT 1";
                let join = if $backend == "postgres" {
                    format!("LEFT JOIN LATERAL (SELECT x.* {last}) r ON true")
                } else {
                    format!("LEFT JOIN config_backup_runs r ON r.id = (SELECT x.id {last})")
                };
                let rows = sqlx::query(&format!(
                    "SELECT s.site AS site_name, s.host AS announced_host, s.schedule_enabled AS schedule_enabled, \
                     s.schedule_hour AS schedule_hour, s.schedule_minute AS schedule_minute, s.seen_at AS seen_at, {} \
                     FROM config_backup_sites s {join} ORDER BY s.site",
                    run_columns.join(", ")
                ))
                .fetch_all(&self.pool)
                .await?;
                let locks = sqlx::query(
                    "SELECT name, holder_kind, holder_id, host, pid, instance, acquired_at, heartbeat_at FROM engine_lock",
                )
                .fetch_all(&self.pool)
                .await?;
                let mut held = std::collections::HashMap::new();
                for l in &locks {
                    held.insert(l.try_get::<String, _>("name")?, Self::lock_from_row(l)?);
                }
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    let site: String = r.try_get("site_name")?;
                    let last_run = match r.try_get::<Option<Uuid>, _>("id")? {
                        Some(_) => Some(Self::run_from_row(r)?),
                        None => None,
                    };
                    out.push(SiteRecord {
                        lock: held.remove(&site),
                        announced: Self::announcement_from_row(r)?,
                        site,
                        last_run,
                    });
                }
                Ok(out)
            }

            async fn announcement(&self, site: &str) -> Result<Option<SiteAnnouncement>, StoreError> {
                let row = sqlx::query(
                    "SELECT host AS announced_host, schedule_enabled, schedule_hour, schedule_minute, seen_at \
                     FROM config_backup_sites WHERE site = $1",
                )
                .bind(site)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::announcement_from_row).transpose()
            }

            async fn try_lock(&self, holder: &LockHolder, ttl: Duration) -> Result<LockAttempt, StoreError> {
                if self.insert_lock(holder).await? {
                    return Ok(LockAttempt::Acquired { replaced: None });
                }
                let Some((current, heartbeat)) = self.current_lock().await? else {
                    // Released between our insert and our read: try once more.
                    return Ok(if self.insert_lock(holder).await? {
                        LockAttempt::Acquired { replaced: None }
                    } else {
                        match self.current_lock().await? {
                            Some((c, _)) => LockAttempt::Held(c),
                            None => LockAttempt::Held(holder.clone()),
                        }
                    });
                };
                if holder_alive(&current, heartbeat, ttl, Utc::now(), holder) {
                    return Ok(LockAttempt::Held(current));
                }
                // Remove exactly the dead holder (someone else may have replaced it already).
                sqlx::query("DELETE FROM engine_lock WHERE name = $1 AND holder_id = $2")
                    .bind(&self.site)
                    .bind(current.id)
                    .execute(&self.pool)
                    .await?;
                if self.insert_lock(holder).await? {
                    Ok(LockAttempt::Acquired { replaced: Some(current) })
                } else {
                    Ok(match self.current_lock().await? {
                        Some((c, _)) => LockAttempt::Held(c),
                        None => LockAttempt::Held(current),
                    })
                }
            }

            async fn renew_lock(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
                let done = sqlx::query("UPDATE engine_lock SET heartbeat_at = $1 WHERE name = $2 AND holder_id = $3")
                    .bind(micros(at))
                    .bind(&self.site)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn release_lock(&self, id: Uuid) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM engine_lock WHERE name = $1 AND holder_id = $2")
                    .bind(&self.site)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                self.wrote();
                Ok(())
            }

            async fn lock_holder(&self) -> Result<Option<(LockHolder, DateTime<Utc>)>, StoreError> {
                self.current_lock().await
            }

            async fn insert_rollback_task(&self, task: &RollbackTask) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO config_rollback_tasks (id, domains, target_hash, state, requested_by, reason, \
                     requested_at, completed_at, duration_seconds, error, revert_succeeded, warnings, snapshot_commit, host, site) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
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
                let mut tx = self.pool.begin().await?;
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
                if let Some(id) = release {
                    sqlx::query("DELETE FROM engine_lock WHERE name = $1 AND holder_id = $2")
                        .bind(&self.site)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                self.wrote();
                Ok(())
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

            async fn record_mail(&self, mail: &MailRecord) -> Result<(), StoreError> {
                sqlx::query("INSERT INTO config_backup_mail (id, sent_at, kind, subject, ok, error, site) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                    .bind(Uuid::new_v4())
                    .bind(micros(mail.sent_at))
                    .bind(&mail.kind)
                    .bind(&mail.subject)
                    .bind(mail.ok)
                    .bind(&mail.error)
                    .bind(&self.site)
                    .execute(&self.pool)
                    .await?;
                self.wrote();
                Ok(())
            }

            async fn last_mail(&self) -> Result<Option<MailRecord>, StoreError> {
                let row = sqlx::query("SELECT sent_at, kind, subject, ok, error FROM config_backup_mail WHERE site = $1 ORDER BY sent_at DESC LIMIT 1")
                    .bind(&self.site)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(r) = row else { return Ok(None) };
                Ok(Some(MailRecord {
                    sent_at: r.try_get("sent_at")?,
                    kind: r.try_get("kind")?,
                    subject: r.try_get("subject")?,
                    ok: r.try_get("ok")?,
                    error: r.try_get("error")?,
                }))
            }

            async fn record_domain_errors(&self, run_id: Uuid, errors: &[(Domain, String)]) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
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
                let rows = sqlx::query("SELECT domain, error FROM config_backup_domain_errors WHERE run_id = $1 ORDER BY domain")
                    .bind(run_id)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        let d: String = r.try_get("domain")?;
                        let d = d.parse().map_err(|e: crate::domain::UnknownDomain| StoreError::Corrupt(e.to_string()))?;
                        Ok((d, r.try_get("error")?))
                    })
                    .collect()
            }

            async fn record_secret_reveal(&self, r: &SecretReveal) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO config_secret_reveals (id, revealed_at, revealed_by, commit1, commit2, domain, path, site) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(r.id)
                .bind(micros(r.revealed_at))
                .bind(&r.revealed_by)
                .bind(&r.commit1)
                .bind(&r.commit2)
                .bind(r.domain.map(|d| d.as_str()))
                .bind(&r.path)
                .bind(&self.site)
                .execute(&self.pool)
                .await?;
                self.wrote();
                Ok(())
            }

            async fn secret_reveals(&self, limit: i64) -> Result<Vec<SecretReveal>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, revealed_at, revealed_by, commit1, commit2, domain, path FROM config_secret_reveals \
                     WHERE site = $1 ORDER BY revealed_at DESC LIMIT $2",
                )
                .bind(&self.site)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        let domain: Option<String> = r.try_get("domain")?;
                        Ok(SecretReveal {
                            id: r.try_get("id")?,
                            revealed_at: r.try_get("revealed_at")?,
                            revealed_by: r.try_get("revealed_by")?,
                            commit1: r.try_get("commit1")?,
                            commit2: r.try_get("commit2")?,
                            domain: domain
                                .map(|d| d.parse().map_err(|e: crate::domain::UnknownDomain| StoreError::Corrupt(e.to_string())))
                                .transpose()?,
                            path: r.try_get("path")?,
                        })
                    })
                    .collect()
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

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
        }
    };
}

sql_store!(SqliteStore, sqlx::Sqlite, sqlx::SqlitePool, "sqlite");
sql_store!(PostgresStore, sqlx::Postgres, sqlx::PgPool, "postgres");
audit::audit_sql!(
    SqliteStore,
    sqlx::Sqlite,
    "unhex(printf('%012x80008%015x', c.seq, v.file_key))",
    ("seq IN (SELECT value FROM json_each('[' || ", " || ']'))"),
    false,
    "+commit_seq"
);
audit::audit_sql!(
    PostgresStore,
    sqlx::Postgres,
    "(lpad(to_hex(c.seq), 12, '0') || '80008' || lpad(to_hex(v.file_key), 15, '0'))::uuid",
    ("seq = ANY(string_to_array(", ", ',')::bigint[])"),
    true,
    "commit_seq"
);

impl SqliteStore {
    /// Opens (creating if needed) the SQLite file, in WAL mode with full sync, and migrates.
    pub async fn connect(url: &str, site: &str) -> Result<Self, StoreError> {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // A run inserts a row per file into several indexes: a page cache of 8 MiB per
            // connection (the default is 2 MiB; pages are allocated as used, so a server
            // holds up to that per busy connection) keeps their hot pages instead of
            // spilling mid-transaction, and the statement journals of those multi-row
            // inserts stay in memory.
            .pragma("cache_size", "-8192")
            .pragma("temp_store", "memory")
            // SQLite runs on a worker thread per connection that hands rows over through a
            // channel; one of a History page's size (and more) lets the worker step a
            // whole page without waiting for the reader to catch up.
            .row_buffer_size(1024);
        if let Some(parent) = opts.get_filename().parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(sqlx::Error::Io)?;
        }
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(opts).await?;
        sqlx::migrate!("../../migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore::new(pool, site))
    }

    /// SQLite keeps one table: nothing to create.
    async fn ensure_month(&self, _month: chrono::NaiveDate) -> Result<(), StoreError> {
        let _ = &self.months;
        Ok(())
    }

    /// Deletes the rows before `cutoff`.
    async fn drop_before(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        cutoff: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.delete_rows_before(tx, cutoff).await
    }
}

impl PostgresStore {
    /// Connects to PostgreSQL and migrates (sqlx serialises concurrent migrators).
    pub async fn connect(url: &str, site: &str) -> Result<Self, StoreError> {
        // Generic plans: every statement is prepared once per connection and planned once.
        // Left to choose, PostgreSQL plans most of them anew on every call (a custom plan
        // looks cheaper for the bound values), and planning over the monthly partitions
        // costs more than running: 0.25 ms against 0.12 for History's page, more with
        // every month kept. Our statements filter on indexed keys (site, domain, path,
        // seq) and time ranges the partitions prune at run time, so one plan fits every
        // value; and it is the same plan whatever the other sites hold, which a custom
        // plan is not (measured in docs/benchmarks.md, "A fleet on one PostgreSQL").
        // Set once a connection opens rather than as a startup option, which a pooler
        // in front of PostgreSQL (PgBouncer) may refuse.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::Executor::execute(&mut *conn, "SET plan_cache_mode = force_generic_plan").await?;
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        sqlx::migrate!("../../migrations/postgres").run(&pool).await?;
        let store = PostgresStore::new(pool, site);
        let now = Utc::now();
        for ahead in 0..3 {
            if let Some(m) = now.checked_add_months(chrono::Months::new(ahead)) {
                store.ensure_month(audit::month_of(m)).await?;
            }
        }
        Ok(store)
    }

    /// Creates the month's partitions if they do not exist (once per process and month).
    async fn ensure_month(&self, month: chrono::NaiveDate) -> Result<(), StoreError> {
        if self.months.lock().map(|m| m.contains(&month)).unwrap_or(false) {
            return Ok(());
        }
        sqlx::query("SELECT config_backup_ensure_month($1)")
            .bind(month)
            .execute(&self.pool)
            .await?;
        if let Ok(mut m) = self.months.lock() {
            m.insert(month);
        }
        Ok(())
    }

    /// Drops the monthly partitions that end at or before `cutoff`, and deletes the rows
    /// before it from the month it falls in: the cost follows what is removed, not the
    /// table.
    async fn drop_before(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        cutoff: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let boundary = audit::month_of(cutoff);
        let parts = sqlx::query(
            "SELECT c.relname AS part, p.relname AS parent FROM pg_inherits i \
             JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent \
             WHERE p.relname IN ('config_commits', 'config_file_changes')",
        )
        .fetch_all(&mut **tx)
        .await?;
        let mut removed = 0u64;
        for r in &parts {
            let (part, parent): (String, String) = (r.try_get("part")?, r.try_get("parent")?);
            let Some(month) = audit::partition_month(&part, &parent) else {
                continue;
            };
            if month >= boundary {
                continue;
            }
            if parent == "config_commits" {
                let n: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM \"{part}\""))
                    .fetch_one(&mut **tx)
                    .await?
                    .try_get("n")?;
                removed += n as u64;
            }
            sqlx::query(&format!("DROP TABLE \"{part}\""))
                .execute(&mut **tx)
                .await?;
            if let Ok(mut m) = self.months.lock() {
                m.remove(&month);
            }
        }
        Ok(removed + self.delete_rows_before(tx, cutoff).await?)
    }
}
