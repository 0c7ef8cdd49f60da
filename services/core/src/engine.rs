//! The backup engine: one run = for each domain, scan, hash, stage, commit; then push
//! and record. The engine lock keeps one backup or rollback at a time, across
//! replicas that share a database. Git and file work runs on the blocking pool.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::diff::{DiffQuery, DiffResult};
use crate::domain::{Actor, CommitHash, Domain, RepoPath};
use crate::error::{EngineError, blocking};
use crate::repo::{self, ChangeKind, CommitInfo, FileRecord, Manifest, ManifestEntry, RepoError, WorkingCopy};
use crate::settings::{DomainSpec, Settings};
use crate::sources;
use crate::statcache::{self, FileStat, StatCache};
use crate::store::{
    AuditRow, DomainSummary, HistoryQuery, LockAttempt, LockHolder, LockKind, PushOutcome, RunOutcome, RunRecord,
    Store, Trigger,
};

/// What to back up and on whose behalf.
#[derive(Debug, Clone)]
pub struct BackupParams {
    /// What started it.
    pub trigger: Trigger,
    /// Who asked.
    pub actor: Actor,
    /// Only these domains (validated against the configuration); empty for all.
    pub domains: Vec<String>,
}

impl BackupParams {
    /// A backup of the given domains (empty for all).
    pub fn new(trigger: Trigger, actor: Actor, domains: Vec<String>) -> BackupParams {
        BackupParams {
            trigger,
            actor,
            domains,
        }
    }
}

/// What a run's commits say they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitTitle {
    /// `config backup YYYY-MM-DD ...`.
    Backup,
    /// `config rollback YYYY-MM-DD <domain> to <hash7> (task <id>)`.
    Rollback {
        /// The target commit.
        target: String,
        /// The task.
        task: Uuid,
    },
}

/// What one domain's part of a run did.
#[derive(Debug, Clone, Default)]
pub struct DomainReport {
    /// The domain.
    pub domain: Option<Domain>,
    /// The commit made.
    pub commit: Option<CommitHash>,
    /// Its message.
    pub message: String,
    /// Its parent.
    pub previous: Option<CommitHash>,
    /// Added, modified and deleted files.
    pub changes: Vec<FileRecord>,
    /// How many files were unchanged.
    pub unchanged: usize,
    /// Patterns that matched nothing.
    pub unmatched: Vec<String>,
    /// Skipped files and unreadable directories.
    pub warnings: Vec<String>,
    /// Why the domain failed.
    pub error: Option<String>,
}

impl DomainReport {
    /// Count of a change kind.
    pub fn count(&self, kind: ChangeKind) -> usize {
        if kind == ChangeKind::Unchanged {
            return self.unchanged;
        }
        self.changes.iter().filter(|c| c.kind == kind).count()
    }
}

/// The push at the end of a run.
#[derive(Debug, Clone)]
pub struct PushReport {
    /// What happened.
    pub outcome: PushOutcome,
    /// Why it failed.
    pub error: Option<String>,
    /// Local commits the remote lacks.
    pub unpushed: usize,
    /// The remote head, if verified.
    pub remote_head: Option<CommitHash>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The run as recorded.
    pub run: RunRecord,
    /// Per domain, in configured order.
    pub domains: Vec<DomainReport>,
    /// The push.
    pub push: PushReport,
}

/// The service's state for the Status call.
#[derive(Debug, Clone)]
pub struct EngineStatus {
    /// The last run.
    pub last_run: Option<RunRecord>,
    /// The last successful run.
    pub last_successful_run: Option<RunRecord>,
    /// Per configured domain: summary and tracked file count.
    pub domains: Vec<(Domain, Option<DomainSummary>, usize)>,
    /// Commits the remote lacks.
    pub unpushed: usize,
    /// When a push last succeeded.
    pub last_push_at: Option<DateTime<Utc>>,
    /// The last push error, if the last run's push failed.
    pub last_push_error: Option<String>,
    /// The next scheduled run.
    pub next_scheduled_at: DateTime<Utc>,
    /// Whether the schedule is on.
    pub schedule_enabled: bool,
    /// The remote, password removed.
    pub remote: String,
    /// The branch.
    pub branch: String,
    /// What holds the lock now.
    pub running: Option<LockHolder>,
    /// The latest mail attempt.
    pub last_mail: Option<crate::store::MailRecord>,
}

/// Told when a backup or a rollback ends (the NOC's mail). It must not fail them: it
/// reports its own problems.
#[async_trait::async_trait]
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// A backup run ended (not the runs a rollback makes).
    async fn backup_finished(&self, engine: &Engine, report: &BackupReport);
    /// A rollback reached its terminal state.
    async fn rollback_finished(&self, engine: &Engine, task: &crate::store::RollbackTask);
}

/// The engine. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: Arc<Settings>,
    store: Arc<dyn Store>,
    host: String,
    tasks: TaskTracker,
    /// Told when backups and rollbacks end.
    observer: std::sync::OnceLock<Arc<dyn Observer>>,
    /// The last status read, reused while the store saw no write from this process and it
    /// is younger than [`STATUS_MAX_AGE`].
    status_cache: tokio::sync::Mutex<Option<CachedStatus>>,
    /// `git gc --auto` after runs, off their critical path.
    maintenance: crate::maintenance::Maintenance,
    /// Rollbacks running (or just ended) in this process, for their subscribers.
    rollbacks:
        std::sync::Mutex<std::collections::HashMap<Uuid, tokio::sync::watch::Sender<crate::store::RollbackTask>>>,
}

/// Holds the engine lock and renews it until released.
#[derive(Debug)]
pub struct EngineLock {
    store: Arc<dyn Store>,
    id: Uuid,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl EngineLock {
    /// The id the lock is held under.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Stops renewing the lock: the caller releases it in its own transaction (or it expires).
    pub fn stop_renewing(&self) {
        self.heartbeat.abort();
    }

    /// Releases the lock.
    pub async fn release(self) {
        self.heartbeat.abort();
        if let Err(e) = self.store.release_lock(self.id).await {
            tracing::error!(error = %e, id = %self.id, "could not release the engine lock; it expires by itself");
        }
    }
}

impl Drop for EngineLock {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

const RECOVERY_LIMIT: usize = 1000;

/// Audit rows read from the repository before they are inserted.
const AUDIT_BATCH_ROWS: usize = 8192;

/// How long a status read by this process may be reused when nothing it wrote changed.
pub const STATUS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug)]
struct CachedStatus {
    at: Instant,
    generation: u64,
    status: EngineStatus,
}

impl Engine {
    /// An engine over these settings and this store.
    pub fn new(settings: Settings, store: Arc<dyn Store>) -> Engine {
        crate::transport::set_timeouts(settings.git.connect_timeout, settings.git.transfer_timeout);
        repo::tune_libgit2();
        Engine {
            inner: Arc::new(Inner {
                settings: Arc::new(settings),
                store,
                host: crate::store::hostname(),
                tasks: TaskTracker::new(),
                rollbacks: Default::default(),
                observer: std::sync::OnceLock::new(),
                status_cache: Default::default(),
                maintenance: Default::default(),
            }),
        }
    }

    /// Waits until the housekeeping that runs after backups is done (for benchmarks and
    /// tests: what they measure or inspect next should not share the machine with a
    /// repack).
    pub async fn maintenance_idle(&self) {
        let m = self.inner.maintenance.clone();
        // A panic cannot happen in `wait_idle`; a join error only means shutdown.
        let _ = tokio::task::spawn_blocking(move || m.wait_idle()).await;
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Creates the embedded remote if it is the default, and opens or clones the
    /// working copy. Called at start; the service is ready when this succeeds.
    pub async fn prepare(&self) -> Result<(), EngineError> {
        self.inner.store.ping().await?;
        let git = self.inner.settings.git.clone();
        if git.remote_is_embedded {
            let g = git.clone();
            blocking(move || repo::ensure_bare_remote(std::path::Path::new(&g.remote), &g.branch)).await??;
        }
        let open = move || -> Result<(), EngineError> {
            WorkingCopy::open(&git)?;
            Ok(())
        };
        if self.inner.settings.git.working_dir.join(".git").exists() {
            return blocking(open).await?;
        }
        // Cloning writes the working copy: only under the engine lock, so it never races
        // a backup (here or on a replica sharing the directory).
        let lock = self.lock(LockKind::Backup, Uuid::new_v4()).await?;
        let result = blocking(open).await;
        lock.release().await;
        result?
    }

    /// Waits for running backups and rollbacks to finish; new ones are refused after.
    pub async fn shutdown(&self) {
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    /// Runs `fut` as a task that outlives its caller (a client that disconnects does
    /// not cancel a backup) and that [`Engine::shutdown`] waits for.
    pub async fn run_detached<T, F>(&self, fut: F) -> Result<T, EngineError>
    where
        F: std::future::Future<Output = Result<T, EngineError>> + Send + 'static,
        T: Send + 'static,
    {
        if self.inner.tasks.is_closed() {
            return Err(EngineError::Internal("the server is shutting down".to_owned()));
        }
        self.inner
            .tasks
            .spawn(fut)
            .await
            .map_err(|e| EngineError::Internal(format!("task failed: {e}")))?
    }

    /// Sets the observer (once).
    pub fn set_observer(&self, observer: Arc<dyn Observer>) {
        let _ = self.inner.observer.set(observer);
    }

    /// Tells the observer, in the background (the caller's answer does not wait for mail).
    pub(crate) fn notify_backup(&self, report: &BackupReport) {
        if let Some(o) = self.inner.observer.get().cloned() {
            let (engine, report) = (self.clone(), report.clone());
            self.inner
                .tasks
                .spawn(async move { o.backup_finished(&engine, &report).await });
        }
    }

    pub(crate) fn notify_rollback(&self, task: &crate::store::RollbackTask) {
        if let Some(o) = self.inner.observer.get().cloned() {
            let (engine, task) = (self.clone(), task.clone());
            self.inner
                .tasks
                .spawn(async move { o.rollback_finished(&engine, &task).await });
        }
    }

    /// What one commit changed, per file with line counts (against its parent).
    pub async fn commit_changes(&self, commit: &str) -> Result<DiffResult, EngineError> {
        let git = self.inner.settings.git.clone();
        let oid = git2::Oid::from_str(commit).map_err(|e| EngineError::Internal(e.to_string()))?;
        blocking(move || -> Result<DiffResult, EngineError> {
            let wc = WorkingCopy::open_existing(&git)?
                .ok_or_else(|| EngineError::NotFound("the backup repository has no commit yet".to_owned()))?;
            crate::diff::commit_changes(&wc, oid, crate::diff::DiffLimits::default())
        })
        .await?
    }

    /// Whether the engine refuses new work (shutting down).
    pub(crate) fn tasks_closed(&self) -> bool {
        self.inner.tasks.is_closed()
    }

    /// Runs work in the background; [`Engine::shutdown`] waits for it.
    pub(crate) fn spawn_task(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        self.inner.tasks.spawn(fut);
    }

    pub(crate) fn register_rollback(&self, id: Uuid, tx: tokio::sync::watch::Sender<crate::store::RollbackTask>) {
        self.inner
            .rollbacks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
    }

    pub(crate) fn live_rollback(&self, id: Uuid) -> Option<tokio::sync::watch::Sender<crate::store::RollbackTask>> {
        self.inner
            .rollbacks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    /// Drops a finished rollback from memory after a while (the database keeps it).
    pub(crate) fn forget_rollback_later(&self, id: Uuid) {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(300)).await;
            inner.rollbacks.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        });
    }

    /// Takes the engine lock for a backup or rollback, or says who holds it.
    pub async fn lock(&self, kind: LockKind, id: Uuid) -> Result<EngineLock, EngineError> {
        let store = self.inner.store.clone();
        let holder = LockHolder {
            kind,
            id,
            host: self.inner.host.clone(),
            pid: std::process::id(),
            instance: crate::store::instance().to_owned(),
            acquired_at: Utc::now(),
        };
        let ttl = self.inner.settings.lock_ttl;
        match store.try_lock(&holder, ttl).await? {
            LockAttempt::Held(h) => return Err(EngineError::Busy(h)),
            LockAttempt::Acquired { replaced: Some(dead) } => {
                tracing::warn!(%dead, "took over the engine lock from a holder that stopped");
            }
            LockAttempt::Acquired { replaced: None } => {}
        }
        let hb_store = store.clone();
        let heartbeat = tokio::spawn(async move {
            let mut tick = tokio::time::interval(ttl / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                match hb_store.renew_lock(id, Utc::now()).await {
                    Ok(true) => {}
                    Ok(false) => tracing::error!(%id, "the engine lock was taken over while held"),
                    Err(e) => tracing::warn!(error = %e, %id, "could not renew the engine lock"),
                }
            }
        });
        Ok(EngineLock { store, id, heartbeat })
    }

    /// The last successful backup's start, if any.
    pub async fn last_success_at(&self) -> Result<Option<DateTime<Utc>>, EngineError> {
        Ok(self.inner.store.last_successful_run().await?.map(|r| r.started_at))
    }

    /// Runs a backup now. Fails with [`EngineError::Busy`] if one is running.
    pub async fn backup(&self, params: BackupParams) -> Result<BackupReport, EngineError> {
        let specs = self.select_domains(&params.domains)?;
        let this = self.clone();
        self.run_detached(async move { this.backup_locked(params, specs).await })
            .await
    }

    fn select_domains(&self, names: &[String]) -> Result<Vec<DomainSpec>, EngineError> {
        let settings = &self.inner.settings;
        if names.is_empty() {
            return Ok(settings.domains.clone());
        }
        let mut wanted = HashSet::new();
        for name in names {
            let domain: Domain =
                name.parse()
                    .map_err(|e: crate::domain::UnknownDomain| EngineError::InvalidArgument {
                        field: "domains",
                        message: e.to_string(),
                    })?;
            if settings.domain(domain).is_none() {
                return Err(EngineError::InvalidArgument {
                    field: "domains",
                    message: format!(
                        "domain {domain} is not configured: configured domains are {}",
                        settings.configured_domains()
                    ),
                });
            }
            wanted.insert(domain);
        }
        Ok(settings
            .domains
            .iter()
            .filter(|d| wanted.contains(&d.domain))
            .cloned()
            .collect())
    }

    async fn backup_locked(&self, params: BackupParams, specs: Vec<DomainSpec>) -> Result<BackupReport, EngineError> {
        let run_id = Uuid::new_v4();
        let lock = self.lock(LockKind::Backup, run_id).await?;
        let result = self.backup_inner(run_id, params, specs, CommitTitle::Backup).await;
        lock.release().await;
        if let Ok(report) = &result {
            self.notify_backup(report);
        }
        result
    }

    /// A run, with the engine lock already held by the caller.
    pub(crate) async fn backup_inner(
        &self,
        run_id: Uuid,
        params: BackupParams,
        specs: Vec<DomainSpec>,
        title: CommitTitle,
    ) -> Result<BackupReport, EngineError> {
        let store = &self.inner.store;
        let started = Instant::now();
        let started_at = Utc::now();
        let interrupted = store.mark_interrupted_runs(run_id, started_at).await?;
        if !interrupted.is_empty() {
            tracing::warn!(runs = ?interrupted, "runs interrupted by a stop were marked; their commits are recovered now");
        }
        let mut run = RunRecord {
            id: run_id,
            trigger: params.trigger,
            requested_by: params.actor.as_audit().to_owned(),
            host: self.inner.host.clone(),
            started_at,
            finished_at: None,
            outcome: RunOutcome::Running,
            error: None,
            push_outcome: None,
            push_error: None,
            unpushed_commits: 0,
            files_added: 0,
            files_modified: 0,
            files_deleted: 0,
            files_unchanged: 0,
            commits: 0,
        };
        store.insert_run(&run).await?;
        tracing::info!(run_id = %run_id, trigger = run.trigger.as_str(), by = %run.requested_by, "backup started");

        let settings = self.inner.settings.clone();
        let actor = params.actor.clone();
        // A rollback's own commits leave housekeeping to the next backup: it would only
        // delay putting the last good configuration back.
        let maintain = params.trigger != Trigger::Rollback;
        let git_phase =
            blocking(move || git_phase(&settings, run_id, &actor, &specs, started_at, &title, maintain)).await?;

        let mut maintenance = Vec::new();
        let (domains, push, error) = match git_phase {
            Ok(g) => {
                maintenance = g.maintenance;
                if !g.rewritten.is_empty() {
                    let moves: Vec<(String, String, String)> = g
                        .rewritten
                        .iter()
                        .map(|(o, n, p)| (o.to_string(), n.to_string(), p.to_string()))
                        .collect();
                    store.rewrite_commits(&moves).await?;
                }
                (g.domains, g.push, None)
            }
            Err(e) => {
                tracing::error!(run_id = %run_id, error = %e, "backup failed before committing");
                let push = PushReport {
                    outcome: PushOutcome::NotAttempted,
                    error: None,
                    unpushed: 0,
                    remote_head: None,
                };
                (Vec::new(), push, Some(e.to_string()))
            }
        };

        // Record every commit not yet in the audit trail: this run's, and those of a
        // run that was interrupted between its commit and its record.
        let recorded = self.record_unrecorded_commits().await;

        for d in &domains {
            run.files_added += d.count(ChangeKind::Added) as i64;
            run.files_modified += d.count(ChangeKind::Modified) as i64;
            run.files_deleted += d.count(ChangeKind::Deleted) as i64;
            run.files_unchanged += d.count(ChangeKind::Unchanged) as i64;
            run.commits += i64::from(d.commit.is_some());
        }
        let failed_domains: Vec<String> = domains
            .iter()
            .filter_map(|d| {
                d.error
                    .as_ref()
                    .map(|e| format!("{}: {e}", d.domain.map(|x| x.as_str()).unwrap_or("?")))
            })
            .collect();
        let mut errors: Vec<String> = error.into_iter().chain(failed_domains).collect();
        if let Err(e) = &recorded {
            errors.push(format!("audit trail: {e}"));
        }
        run.outcome = if run.commits == 0 {
            RunOutcome::Failed
        } else if errors.is_empty() && push.outcome == PushOutcome::Pushed {
            RunOutcome::Success
        } else {
            RunOutcome::Partial
        };
        if let (false, Some(e)) = (push.outcome == PushOutcome::Pushed, &push.error) {
            errors.push(format!("push: {e}"));
        }
        run.error = (!errors.is_empty()).then(|| errors.join("; "));
        run.push_outcome = Some(push.outcome);
        run.push_error = push.error.clone();
        run.unpushed_commits = push.unpushed as i64;
        run.finished_at = Some(Utc::now());
        store.update_run(&run).await?;
        // Housekeeping once the run is on record, on its own thread: a repack can take
        // longer than the backup it follows.
        self.inner.maintenance.request(maintenance);

        if let Err(e) = self.apply_retention().await {
            tracing::warn!(error = %e, "retention of audit rows failed; it is tried again after the next run");
        }
        tracing::info!(
            run_id = %run_id,
            outcome = run.outcome.as_str(),
            push = push.outcome.as_str(),
            commits = run.commits,
            added = run.files_added,
            modified = run.files_modified,
            deleted = run.files_deleted,
            unchanged = run.files_unchanged,
            unpushed = push.unpushed,
            duration_ms = started.elapsed().as_millis() as u64,
            error = run.error.as_deref().unwrap_or(""),
            "backup finished"
        );
        Ok(BackupReport { run, domains, push })
    }

    /// Inserts audit rows for commits on the branch that the audit trail lacks.
    async fn record_unrecorded_commits(&self) -> Result<usize, EngineError> {
        let git = self.inner.settings.git.clone();
        let candidates = blocking(move || -> Result<Vec<git2::Oid>, EngineError> {
            let wc = WorkingCopy::open(&git)?;
            Ok(wc.unrecorded_commits(|_| false, RECOVERY_LIMIT)?)
        })
        .await??;
        let mut missing = Vec::new();
        for id in candidates {
            if self.inner.store.commit_recorded(&id.to_string()).await? {
                break;
            }
            missing.push(id);
        }
        if missing.is_empty() {
            return Ok(0);
        }
        // Oldest first, in batches of about AUDIT_BATCH_ROWS rows: memory stays bounded on a
        // large site, and a stop between batches leaves the newest commits unrecorded, which
        // is what the walk above finds again.
        let mut queue: std::collections::VecDeque<git2::Oid> = missing.into_iter().rev().collect();
        let mut recorded = 0;
        while !queue.is_empty() {
            let git = self.inner.settings.git.clone();
            let (rows, commits, rest) = blocking(move || -> Result<_, EngineError> {
                let wc = WorkingCopy::open(&git)?;
                let (mut rows, mut commits) = (Vec::new(), 0);
                while rows.len() < AUDIT_BATCH_ROWS
                    && let Some(id) = queue.pop_front()
                {
                    if let Some(info) = wc.commit_info(id)? {
                        rows.extend(audit_rows(&info));
                        commits += 1;
                    }
                }
                Ok((rows, commits, queue))
            })
            .await??;
            self.inner.store.insert_audit_rows(&rows).await?;
            recorded += commits;
            queue = rest;
        }
        Ok(recorded)
    }

    /// Deletes audit rows older than the retention.
    pub async fn apply_retention(&self) -> Result<u64, EngineError> {
        let months = self.inner.settings.retention_months;
        let cutoff = Utc::now()
            .checked_sub_months(chrono::Months::new(months))
            .ok_or_else(|| EngineError::Internal("retention cutoff out of range".to_owned()))?;
        Ok(self.inner.store.delete_audit_rows_before(cutoff).await?)
    }

    /// The service's state. Every change this process makes shows at once; one made by a
    /// replica sharing the database shows within [`STATUS_MAX_AGE`]. Concurrent callers
    /// share one read.
    pub async fn status(&self) -> Result<EngineStatus, EngineError> {
        let mut cache = self.inner.status_cache.lock().await;
        let generation = self.inner.store.write_generation();
        let mut status = match cache.as_ref() {
            Some(c) if c.generation == generation && c.at.elapsed() < STATUS_MAX_AGE => c.status.clone(),
            _ => {
                let at = Instant::now();
                let status = self.read_status().await?;
                *cache = Some(CachedStatus {
                    at,
                    generation,
                    status: status.clone(),
                });
                status
            }
        };
        drop(cache);
        status.next_scheduled_at = self.inner.settings.schedule.next_after(Utc::now());
        Ok(status)
    }

    async fn read_status(&self) -> Result<EngineStatus, EngineError> {
        let store = &self.inner.store;
        let settings = &self.inner.settings;
        let last_run = store.last_run().await?;
        let last_successful_run = store.last_successful_run().await?;
        let last_push_at = store.last_push_success().await?;
        let running = store.lock_holder().await?;
        let last_mail = store.last_mail().await?;
        let git = settings.git.clone();
        let domains_cfg: Vec<Domain> = settings.domains.iter().map(|d| d.domain).collect();
        let (unpushed, tracked) = blocking(move || -> Result<(usize, Vec<usize>), EngineError> {
            if !git.working_dir.join(".git").exists() {
                return Ok((0, vec![0; domains_cfg.len()]));
            }
            let wc = WorkingCopy::open(&git)?;
            let head = wc.head()?;
            let mut tracked = Vec::new();
            for d in &domains_cfg {
                tracked.push(wc.manifest_len(head, *d)?);
            }
            Ok((wc.unpushed()?, tracked))
        })
        .await??;
        let mut domains = Vec::new();
        for (spec, count) in settings.domains.iter().zip(tracked) {
            domains.push((spec.domain, store.domain_summary(spec.domain).await?, count));
        }
        let last_push_error = last_run
            .as_ref()
            .filter(|r| matches!(r.push_outcome, Some(PushOutcome::Failed | PushOutcome::Diverged)))
            .and_then(|r| r.push_error.clone());
        Ok(EngineStatus {
            last_run,
            last_successful_run,
            domains,
            unpushed,
            last_push_at,
            last_push_error,
            next_scheduled_at: settings.schedule.next_after(Utc::now()),
            schedule_enabled: settings.schedule.enabled,
            remote: crate::settings::redact_url(&settings.git.remote),
            branch: settings.git.branch.clone(),
            running,
            last_mail,
        })
    }

    /// History rows from the audit trail, newest first.
    pub async fn history(&self, query: &HistoryQuery) -> Result<Vec<AuditRow>, EngineError> {
        Ok(self.inner.store.history(query).await?)
    }

    /// The difference between two commits.
    pub async fn diff(&self, query: DiffQuery) -> Result<DiffResult, EngineError> {
        let git = self.inner.settings.git.clone();
        blocking(move || -> Result<DiffResult, EngineError> {
            let wc = WorkingCopy::open_existing(&git)?
                .ok_or_else(|| EngineError::NotFound("the backup repository has no commit yet".to_owned()))?;
            crate::diff::diff(&wc, &query)
        })
        .await?
    }

    /// Whether the branch has any commit yet.
    pub async fn has_commits(&self) -> Result<bool, EngineError> {
        let git = self.inner.settings.git.clone();
        blocking(move || -> Result<bool, EngineError> { Ok(WorkingCopy::open(&git)?.head()?.is_some()) }).await?
    }
}

/// The audit rows of one backup commit: one per file of the domain.
pub fn audit_rows(info: &CommitInfo) -> Vec<AuditRow> {
    let by = repo::trailer(&info.message, repo::TRAILER_BY)
        .unwrap_or("system")
        .to_owned();
    // The subject line: the per-file body lines are this row's own fields, and the full
    // message stays in git (a first backup's body lists every file).
    let subject = info.message.lines().next().unwrap_or_default().to_owned();
    info.files
        .iter()
        .map(|f| AuditRow {
            // Time-ordered: the unique index grows at its end instead of at random pages.
            id: Uuid::now_v7(),
            seq: 0,
            run_id: info.run_id,
            backup_date: info.time.date_naive(),
            domain: info.domain,
            config_file: f.path.to_string(),
            commit_hash: info.id.to_string(),
            commit_message: subject.clone(),
            changes_made: f.kind != ChangeKind::Unchanged,
            change_type: f.kind,
            previous_hash: info.parent.map(|p| p.to_string()),
            file_sha256: f.new.as_ref().map(|e| e.sha256.clone()),
            previous_file_sha256: f.old.as_ref().map(|e| e.sha256.clone()),
            backed_up_at: info.time,
            backed_up_by: by.clone(),
        })
        .collect()
}

struct GitPhase {
    domains: Vec<DomainReport>,
    push: PushReport,
    /// Commits rebased onto the remote: (old, new, new parent).
    rewritten: Rewritten,
    /// Repositories to `git gc --auto` once the run is recorded.
    maintenance: Vec<std::path::PathBuf>,
}

/// The blocking part of a run: every domain's commit, then the push.
fn git_phase(
    settings: &Settings,
    run_id: Uuid,
    actor: &Actor,
    specs: &[DomainSpec],
    started_at: DateTime<Utc>,
    title: &CommitTitle,
    maintain: bool,
) -> Result<GitPhase, EngineError> {
    let wc = WorkingCopy::open(&settings.git)?;
    for lock in wc.recover_stale_locks() {
        tracing::warn!(lock = %lock.display(), "removed a stale git lock left by a stopped process");
    }
    wc.reset_to_head()?;
    // Commit on top of what the remote has, so each domain is compared with the tree
    // everyone sees (a hand edit on the remote is replaced by the live file).
    let mut rewritten = Rewritten::new();
    match wc.sync() {
        Ok(r) => rewritten.extend(r.rewritten),
        Err(e) => {
            tracing::warn!(error = %e, "could not bring in the remote's commits before committing; the push will retry")
        }
    }
    let ctx = RunContext {
        run_id,
        actor,
        date: started_at.format("%Y-%m-%d").to_string(),
        title,
    };
    let mut claimed: BTreeMap<RepoPath, Domain> = BTreeMap::new();
    let mut domains = Vec::new();
    for spec in specs {
        let report = match backup_domain(&wc, settings, spec, &mut claimed, &ctx) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(run_id = %run_id, domain = %spec.domain, error = %e, "domain backup failed");
                let _ = wc.reset_to_head();
                DomainReport {
                    domain: Some(spec.domain),
                    error: Some(e.to_string()),
                    ..Default::default()
                }
            }
        };
        domains.push(report);
    }
    let (push, pushed_rewrites) = push(&wc);
    rewritten.extend(pushed_rewrites);
    let maintenance = if maintain { wc.maintenance_dirs() } else { Vec::new() };
    // Follow each rewrite in order (a commit may be rebased at the start and again at the push).
    for (old, new, parent) in &rewritten {
        let old = old.to_string();
        for d in domains
            .iter_mut()
            .filter(|d| d.commit.as_ref().map(|c| c.as_str()) == Some(old.as_str()))
        {
            d.commit = Some((*new).into());
            d.previous = Some((*parent).into());
        }
    }
    Ok(GitPhase {
        domains,
        push,
        rewritten,
        maintenance,
    })
}

use repo::Rewrites as Rewritten;

fn push(wc: &WorkingCopy) -> (PushReport, Rewritten) {
    let result = wc.push();
    let unpushed = wc.unpushed().unwrap_or(0);
    let report = |outcome, error, remote_head| PushReport {
        outcome,
        error,
        unpushed,
        remote_head,
    };
    match result {
        Ok(Some(r)) => {
            if r.foreign_commits > 0 {
                tracing::warn!(
                    foreign = r.foreign_commits,
                    rebased = r.rewritten.len(),
                    "the remote had commits we did not; ours were rebased on top of them"
                );
            }
            (
                report(PushOutcome::Pushed, None, Some(r.remote_head.into())),
                r.rewritten,
            )
        }
        Ok(None) => (report(PushOutcome::NotAttempted, None, None), Vec::new()),
        Err(e) => {
            let outcome = match e {
                repo::PushError::Diverged { .. } => PushOutcome::Diverged,
                _ => PushOutcome::Failed,
            };
            tracing::warn!(error = %e, unpushed, "push failed; the commits stay in the working copy");
            (report(outcome, Some(e.to_string()), None), Vec::new())
        }
    }
}

/// Reads a file into `buf` (replacing its content) and returns its metadata taken before
/// the read: a write after it moves the mtime and ctime, so the cache entry made from the
/// two is never newer than the content.
fn read_with_stat(path: &std::path::Path, buf: &mut Vec<u8>) -> std::io::Result<FileStat> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    buf.clear();
    buf.reserve(usize::try_from(meta.len()).unwrap_or(0));
    f.read_to_end(buf)?;
    Ok(FileStat::of(&meta))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A file of a domain that must be read this run.
struct Pending<'f> {
    file: &'f sources::SourceFile,
    mode: u32,
    /// Its entry in the branch's manifest.
    committed: Option<ManifestEntry>,
    /// Its blob in the branch's tree.
    tree_blob: Option<git2::Oid>,
}

/// A file read and hashed (and staged when it changed).
struct Hashed {
    stat: FileStat,
    sha256: String,
    blob: git2::Oid,
    staged: Option<repo::Staged>,
    /// The SHA-256 of the tree's content when it differed from an unchanged manifest entry.
    hand_edit: Option<String>,
}

/// Reads, hashes and stages one file. A read error is the file's own (reported, the
/// backed-up version kept); a write error fails the domain.
fn hash_one(
    repo: &git2::Repository,
    p: &Pending<'_>,
    bytes: &mut Vec<u8>,
) -> Result<std::io::Result<Hashed>, RepoError> {
    let stat = match read_with_stat(&p.file.abs, bytes) {
        Ok(stat) => stat,
        Err(e) => return Ok(Err(e)),
    };
    let bytes = bytes.as_slice();
    let sha256 = sha256_hex(bytes);
    let unchanged = p
        .committed
        .as_ref()
        .is_some_and(|c| c.sha256 == sha256 && c.mode == p.mode);
    let (blob, staged, hand_edit) = if !unchanged {
        let staged = repo::stage_into(repo, &p.file.path, bytes, p.mode)?;
        (staged.id, Some(staged), None)
    } else {
        let blob = git2::Oid::hash_object(git2::ObjectType::Blob, bytes)?;
        match p.tree_blob {
            Some(tree_blob) if tree_blob != blob => {
                let tree_sha = sha256_hex(repo.find_blob(tree_blob)?.content());
                let staged = repo::stage_into(repo, &p.file.path, bytes, p.mode)?;
                (blob, Some(staged), Some(tree_sha))
            }
            _ => (blob, None, None),
        }
    };
    Ok(Ok(Hashed {
        stat,
        sha256,
        blob,
        staged,
        hand_edit,
    }))
}

/// A pending file's index and what reading it gave.
type Numbered = (usize, std::io::Result<Hashed>);

/// [`hash_one`] for every pending file, on as many threads as there are cores (each with
/// its own handle on the repository), results in the files' order.
fn hash_and_stage(wc: &WorkingCopy, pending: &[Pending<'_>]) -> Result<Vec<std::io::Result<Hashed>>, EngineError> {
    let threads = crate::parallel::threads_for(pending.len(), 32);
    if threads <= 1 {
        let mut buf = Vec::new();
        return Ok(pending
            .iter()
            .map(|p| hash_one(wc.repository(), p, &mut buf))
            .collect::<Result<_, _>>()?);
    }
    let git_dir = wc.repository().path().to_path_buf();
    let hashed = crate::parallel::in_order(
        pending,
        threads,
        |next| -> Result<Vec<Numbered>, RepoError> {
            let repo = git2::Repository::open(&git_dir)?;
            // One read buffer per thread: a buffer per file, freed between files of mixed
            // sizes, fragments the heap on a large site.
            let mut buf = Vec::new();
            let mut out = Vec::new();
            while let Some((i, p)) = next() {
                out.push((i, hash_one(&repo, p, &mut buf)?));
            }
            Ok(out)
        },
        || git2::Error::from_str("a hashing thread panicked").into(),
    )?;
    Ok(hashed)
}

/// What every domain commit of one run shares.
struct RunContext<'a> {
    run_id: Uuid,
    actor: &'a Actor,
    date: String,
    title: &'a CommitTitle,
}

fn backup_domain(
    wc: &WorkingCopy,
    settings: &Settings,
    spec: &DomainSpec,
    claimed: &mut BTreeMap<RepoPath, Domain>,
    ctx: &RunContext<'_>,
) -> Result<DomainReport, EngineError> {
    let (run_id, actor, date, title) = (ctx.run_id, ctx.actor, ctx.date.as_str(), ctx.title);
    let domain = spec.domain;
    let head = wc.head()?;
    let old = wc.manifest_at(head, domain)?;
    let mut head_files = wc.head_tree()?.map(|t| repo::TreeFiles::new(wc.repository(), t));
    // The stat cache: files untouched since they were last hashed are not read, unless a
    // full re-hash is due.
    let cache_file = statcache::path(wc.repository().path(), domain);
    let now = Utc::now();
    let now_unix = now.timestamp();
    let now_ns = i128::from(now.timestamp_nanos_opt().unwrap_or(i64::MAX));
    let previous = StatCache::load(&cache_file);
    let interval = i64::try_from(settings.full_rehash_interval.as_secs()).unwrap_or(i64::MAX);
    let full_rehash = interval == 0 || now_unix.saturating_sub(previous.full_rehash_at) >= interval;
    let mut cache = StatCache::new(if full_rehash { now_unix } else { previous.full_rehash_at });
    let mut old = old;
    let scan = sources::scan(&settings.source_root, &spec.patterns)
        .map_err(|e| EngineError::Internal(format!("reading {}: {e}", settings.source_root.display())))?;
    let mut warnings = scan.warnings.clone();
    let mut new = Manifest::new();
    let mut contents = BTreeMap::new();
    // In order: claims, and files the stat cache vouches for; the rest must be read.
    let mut pending = Vec::new();
    for file in &scan.files {
        if let Some(owner) = claimed.get(&file.path) {
            warnings.push(format!("{}: skipped, it belongs to domain {owner}", file.path));
            continue;
        }
        claimed.insert(file.path.clone(), domain);
        let mode = repo::git_mode(file.executable);
        let tree_blob = head_files.as_mut().and_then(|f| f.get(&file.path)).map(|(id, _)| id);
        if !full_rehash
            && let Ok(meta) = std::fs::metadata(&file.abs)
            && let Some(hit) = previous.fresh(&file.path, &FileStat::of(&meta))
            && let Some(committed) = old.get(&file.path)
            && committed.sha256 == hit.sha256
            && committed.mode == mode
            && tree_blob == Some(hit.blob)
        {
            // Untouched since it was hashed, and the branch still holds that content.
            new.insert(file.path.clone(), committed.clone());
            cache.record(file.path.clone(), hit.clone(), now_ns);
            continue;
        }
        pending.push(Pending {
            file,
            mode,
            committed: old.get(&file.path).cloned(),
            tree_blob,
        });
    }
    // On every core: read, hash, and write what changed into the work tree and the objects.
    let results = hash_and_stage(wc, &pending)?;
    // In order again: the domain's new manifest, its staged files and the cache.
    let read = pending.len();
    for (p, result) in pending.iter().zip(results) {
        let path = &p.file.path;
        match result {
            Ok(h) => {
                if let Some(tree_sha) = h.hand_edit {
                    // The tree is the truth: the manifest entry matched but the tree held other
                    // content (someone committed on the remote); that content's hash is the old
                    // one and the live file was written again.
                    warnings.push(format!(
                        "{path}: the repository held a hand edit; the live file replaces it"
                    ));
                    if let Some(o) = old.get_mut(path) {
                        o.sha256 = tree_sha;
                    }
                }
                if let Some(staged) = h.staged {
                    contents.insert(path.clone(), staged);
                }
                let entry = statcache::Entry {
                    stat: h.stat,
                    sha256: h.sha256.clone(),
                    blob: h.blob,
                };
                cache.record(path.clone(), entry, now_ns);
                new.insert(
                    path.clone(),
                    ManifestEntry {
                        sha256: h.sha256,
                        mode: p.mode,
                    },
                );
            }
            Err(e) => {
                warnings.push(format!("{path}: cannot read ({e}); the backed-up version is kept"));
                if let Some(o) = old.get(path) {
                    new.insert(path.clone(), o.clone());
                }
            }
        }
    }
    for (path, entry) in &old {
        if !new.contains_key(path) && !claimed.contains_key(path) && scan.may_have_missed(path) {
            warnings.push(format!(
                "{path}: not found in an unreadable directory; the backed-up version is kept"
            ));
            new.insert(path.clone(), entry.clone());
        }
    }
    let records = repo::compare(&old, &new);
    let deleted: Vec<RepoPath> = records
        .iter()
        .filter(|r| r.kind == ChangeKind::Deleted)
        .map(|r| r.path.clone())
        .collect();
    let message = commit_message(date, domain, &records, run_id, actor, title);
    let commit = wc.commit_domain(domain, &new, &contents, &deleted, &message)?;
    // When every file was a hit, the cache on disk is already this one.
    if cache != previous
        && let Err(e) = cache.save(&cache_file)
    {
        tracing::warn!(file = %cache_file.display(), error = %e, "could not save the stat cache; the next run reads every file");
        let _ = std::fs::remove_file(&cache_file);
    }
    let changes: Vec<FileRecord> = records
        .iter()
        .filter(|r| r.kind != ChangeKind::Unchanged)
        .cloned()
        .collect();
    let unchanged = records.len() - changes.len();
    tracing::info!(
        run_id = %run_id,
        domain = %domain,
        commit = %commit,
        changed = changes.len(),
        unchanged,
        read,
        full_rehash,
        "domain committed"
    );
    Ok(DomainReport {
        domain: Some(domain),
        commit: Some(commit.into()),
        message,
        previous: head.map(CommitHash::from),
        changes,
        unchanged,
        unmatched: scan.unmatched,
        warnings,
        error: None,
    })
}

fn short(entry: Option<&ManifestEntry>) -> &str {
    entry.map(|e| &e.sha256[..7.min(e.sha256.len())]).unwrap_or("0000000")
}

/// The commit message: the product's first line, a body line per file when several
/// changed, and trailers that tie the commit to its domain, run and requester.
pub fn commit_message(
    date: &str,
    domain: Domain,
    records: &[FileRecord],
    run_id: Uuid,
    actor: &Actor,
    title: &CommitTitle,
) -> String {
    let changed: Vec<&FileRecord> = records.iter().filter(|r| r.kind != ChangeKind::Unchanged).collect();
    let body = |m: &mut String| {
        for r in &changed {
            m.push_str(&format!(
                "{} {} {}→{}\n",
                r.kind.letter(),
                r.path,
                short(r.old.as_ref()),
                short(r.new.as_ref())
            ));
        }
    };
    let mut msg = match (title, changed.as_slice()) {
        (CommitTitle::Rollback { target, task }, changed) => {
            let mut m = format!(
                "config rollback {date} {domain} to {} (task {task})\n",
                &target[..7.min(target.len())]
            );
            if !changed.is_empty() {
                m.push('\n');
                body(&mut m);
            }
            m
        }
        (CommitTitle::Backup, _) => match changed.as_slice() {
            [] => format!("config backup {date} — no changes ({domain} domain stable)\n"),
            [one] => format!(
                "config backup {date} {} {}→{}\n",
                one.path,
                short(one.old.as_ref()),
                short(one.new.as_ref())
            ),
            many => {
                let mut m = format!("config backup {date} {domain}: {} files changed\n\n", many.len());
                body(&mut m);
                m
            }
        },
    };
    msg.push_str(&format!(
        "\n{}: {domain}\n{}: {run_id}\n{}: {}\n",
        repo::TRAILER_DOMAIN,
        repo::TRAILER_RUN,
        repo::TRAILER_BY,
        actor.as_audit()
    ));
    msg
}
