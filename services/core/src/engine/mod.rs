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
use crate::domain::ChangeKind;
use crate::domain::{Actor, CommitHash, Domain, RepoPath};
use crate::error::{EngineError, blocking};
use crate::repo::{self, CommitInfo, FileRecord, Manifest, ManifestEntry, RepoError, WorkingCopy};
use crate::settings::{DomainSpec, Settings};
use crate::sources;
use crate::statcache::{self, FileStat, NextCache, StatCache};
mod audit;
mod diffs;
mod domains;
mod hashing;
mod history;
mod lock;
mod message;
mod run;
mod sealing;
mod status;

pub(crate) use audit::anchor_problems;
pub use audit::audit_rows;
pub use history::HISTORY_MAX_AGE;
pub use lock::EngineLock;
pub(crate) use lock::Held;
pub use message::{Trailers, commit_message};
pub use sealing::ClearHistory;
use status::CachedStatus;
pub use status::STATUS_MAX_AGE;

use crate::store::{
    AuditCommit, AuditRow, DomainSummary, LockAttempt, LockHolder, LockKind, PushOutcome, RunOutcome, RunRecord, Store,
    Trigger,
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
    /// The request id of the call that asked for it, kept in the run's record.
    pub request_id: Option<String>,
    /// Changes already told (a rollback's plan), taken for the same pairs of versions.
    pub summaries: std::sync::Arc<crate::summary::KnownSummaries>,
}

impl BackupParams {
    /// A backup of the given domains (empty for all).
    pub fn new(trigger: Trigger, actor: Actor, domains: Vec<String>) -> BackupParams {
        BackupParams {
            trigger,
            actor,
            domains,
            request_id: None,
            summaries: Default::default(),
        }
    }

    /// The same, taking the changes `summaries` tells instead of telling them again.
    pub fn with_summaries(mut self, summaries: std::sync::Arc<crate::summary::KnownSummaries>) -> BackupParams {
        self.summaries = summaries;
        self
    }

    /// The same, recording the call's request id.
    pub fn with_request_id(mut self, request_id: Option<String>) -> BackupParams {
        self.request_id = request_id;
        self
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
    /// Files holding secrets that this commit opened to group or others.
    pub security_warnings: Vec<String>,
    /// Why the domain failed.
    pub error: Option<String>,
    /// How long the domain took: scan, read, hash, seal, stage and commit.
    pub duration: std::time::Duration,
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
    /// Where the run's time went.
    pub timings: RunTimings,
}

/// Where a run's time went, phase by phase (logged, and read by the benchmark).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunTimings {
    /// Marking interrupted runs and recording this one.
    pub start: std::time::Duration,
    /// Opening the working copy, removing stale locks, bringing in the remote's commits.
    pub sync: std::time::Duration,
    /// Scanning, reading, sealing, hashing, staging and committing every domain.
    pub domains: std::time::Duration,
    /// Pushing and verifying the push.
    pub push: std::time::Duration,
    /// Writing the audit trail: this run's commits (and any a stopped run left).
    pub audit: std::time::Duration,
    /// Recording the outcome, and retention.
    pub finish: std::time::Duration,
}

/// The service's state for the Status call.
#[derive(Debug, Clone)]
pub struct EngineStatus {
    /// The site.
    pub site: String,
    /// The last run.
    pub last_run: Option<RunRecord>,
    /// The last successful run.
    pub last_successful_run: Option<RunRecord>,
    /// Per configured domain: summary and tracked file count.
    pub domains: Vec<(Domain, Option<DomainSummary>, usize)>,
    /// Per domain that failed in the last run: why (the OS cause and the path, ...).
    pub domain_errors: BTreeMap<Domain, String>,
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
    /// The newest backup commit made before sealing, if any.
    pub clear_history: Option<ClearHistory>,
    /// What holds the lock now.
    pub running: Option<LockHolder>,
    /// A backup or rollback whose holder stopped without releasing the lock (its heartbeat
    /// is older than the lock's TTL, or its process on this host is gone).
    pub interrupted: Option<Interrupted>,
    /// The latest mail attempt.
    pub last_mail: Option<crate::store::MailRecord>,
    /// The fingerprint of the key commits are signed with; none: unsigned (or another
    /// site's status).
    pub signing_key: Option<String>,
    /// Per drilled domain: when a restore drill last proved it and the last drill's verdict.
    pub proofs: BTreeMap<Domain, crate::store::DomainProof>,
}

/// One site of the fleet (`ListSites`).
#[derive(Debug, Clone, PartialEq)]
pub struct SiteStatus {
    /// Its name.
    pub site: String,
    /// The host its server announced from.
    pub host: String,
    /// When its server last announced itself.
    pub seen_at: DateTime<Utc>,
    /// Its last backup run (outcome, push state, unpushed commits).
    pub last_run: Option<RunRecord>,
    /// Its next scheduled run, if its schedule is on.
    pub next_scheduled_at: Option<DateTime<Utc>>,
    /// What holds its lock now, if alive.
    pub running: Option<LockHolder>,
    /// Its drilled domains' proofs, by domain.
    pub proofs: Vec<crate::store::DomainProof>,
}

/// Told when a backup or a rollback ends (the NOC's mail). It must not fail them: it
/// reports its own problems.
#[async_trait::async_trait]
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// A backup run ended (not the runs a rollback makes).
    async fn backup_finished(&self, engine: &Engine, report: &BackupReport);
    /// A rollback reached its terminal state.
    async fn rollback_finished(&self, engine: &Engine, task: &crate::store::RollbackTask);
    /// A restore drill ended (recorded).
    async fn drill_finished(&self, _engine: &Engine, _drill: &crate::store::DrillRecord) {}
}

/// A backup or rollback that stopped without ending: where and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrupted {
    /// Who held the lock.
    pub holder: LockHolder,
    /// When it last renewed it.
    pub last_heartbeat: DateTime<Utc>,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} stopped without ending: its last heartbeat was at {}; the next run recovers its commits",
            self.holder,
            self.last_heartbeat.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    }
}

/// The engine. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: Arc<Settings>,
    /// Seals secrets on their way into the repository, unseals them on the way back.
    sealer: Arc<crate::secrets::Sealer>,
    /// The newest backup commit made before sealing (found at start).
    clear_history: std::sync::Mutex<Option<ClearHistory>>,
    store: Arc<dyn Store>,
    host: String,
    tasks: TaskTracker,
    /// Told when backups and rollbacks end.
    /// The commit signing key's fingerprint, when commits are signed.
    signing_key: Option<String>,
    /// The signing key, read at start: it signs the audit chain's checkpoints and checks
    /// them (commits are signed by the working copy, which reads the key at each open).
    signer: Option<crate::signing::Signer>,
    observers: std::sync::RwLock<Vec<Arc<dyn Observer>>>,
    /// The last status read, reused while the store saw no write from this process and it
    /// is younger than [`STATUS_MAX_AGE`].
    status_cache: tokio::sync::Mutex<Option<CachedStatus>>,
    /// The History pages read lately, reused while current (see [`history`]).
    history_cache: history::HistoryCache,
    /// The Diffs made lately (see [`diffs`]).
    diffs: diffs::DiffCache,
    /// Housekeeping of the repositories after runs, off their critical path.
    maintenance: crate::maintenance::Maintenance,
    /// Rollbacks running (or just ended) in this process, for their subscribers.
    rollbacks:
        std::sync::Mutex<std::collections::HashMap<Uuid, tokio::sync::watch::Sender<crate::store::RollbackTask>>>,
    /// The manifests this process last committed (see [`repo::ManifestCache`]).
    manifests: Arc<repo::ManifestCache>,
    /// The stat caches this process last wrote (see [`statcache::KeptCaches`]).
    stat_caches: Arc<statcache::KeptCaches>,
    /// The summaries of the commits this process made and has not recorded yet: the
    /// audit trail takes them instead of reading and parsing the files again.
    told: Arc<std::sync::Mutex<std::collections::HashMap<git2::Oid, repo::Summaries>>>,
    /// Security warnings raised by this process's backups, by domain (a counter for
    /// `/metrics`; the warnings themselves are in the reports, the log and the mail).
    security_warnings: std::sync::Mutex<BTreeMap<Domain, u64>>,
}

impl Engine {
    /// An engine over these settings and this store.
    /// Fails when the secrets key file cannot be read (or the default one created).
    pub fn new(settings: Settings, store: Arc<dyn Store>) -> Result<Engine, crate::settings::SettingsError> {
        let sealer = Arc::new(settings.sealer()?);
        // A signing key that cannot be used stops the server now, not the first backup.
        let signer = settings.signer()?;
        let signing_key = signer.as_ref().map(|s| s.fingerprint());
        // Validation with service paths needs a private mount namespace: without the
        // privilege, stop now rather than fail every rollback of the domain.
        if let Some((d, _)) = settings
            .rollback
            .commands
            .iter()
            .find(|(_, c)| !c.service_paths.is_empty())
        {
            crate::service_paths::check_namespace_privilege()
                .map_err(|m| crate::settings::SettingsError::new(&format!("CONFIG_ROLLBACK_SERVICE_PATHS__{d}"), m))?;
        }
        crate::transport::set_timeouts(settings.git.connect_timeout, settings.git.transfer_timeout);
        repo::tune_libgit2();
        Ok(Engine {
            inner: Arc::new(Inner {
                sealer,
                clear_history: Default::default(),
                settings: Arc::new(settings),
                store,
                host: crate::store::hostname(),
                tasks: TaskTracker::new(),
                rollbacks: Default::default(),
                observers: Default::default(),
                signing_key,
                signer,
                status_cache: Default::default(),
                history_cache: Default::default(),
                diffs: Default::default(),
                maintenance: Default::default(),
                security_warnings: Default::default(),
                manifests: Default::default(),
                stat_caches: Default::default(),
                told: Default::default(),
            }),
        })
    }

    /// How many security warnings (a file holding secrets opened to group or others) this
    /// process's backups raised, by domain.
    pub fn security_warnings(&self) -> BTreeMap<Domain, u64> {
        self.inner
            .security_warnings
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// The signing key read at start, if commits are signed.
    pub(crate) fn signer(&self) -> Option<&crate::signing::Signer> {
        self.inner.signer.as_ref()
    }

    /// The sealer (secrets key and rules).
    pub fn sealer(&self) -> &Arc<crate::secrets::Sealer> {
        &self.inner.sealer
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

    /// The site this server backs up.
    pub fn site(&self) -> &str {
        self.inner.store.site()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Creates the embedded remote if it is the default, and opens or clones the
    /// working copy. Called at start; the service is ready when this succeeds.
    pub async fn prepare(&self) -> Result<(), EngineError> {
        self.inner.store.ping().await?;
        self.announce().await?;
        let git = self.inner.settings.git.clone();
        if git.remote_is_embedded {
            let g = git.clone();
            blocking(move || repo::ensure_bare_remote(std::path::Path::new(&g.remote), &g.branch)).await??;
        }
        let sealer = self.inner.sealer.clone();
        let open = move || -> Result<Option<ClearHistory>, EngineError> {
            let wc = WorkingCopy::open(&git)?;
            sealing::inspect(&wc, &sealer)
        };
        let clear = if self.inner.settings.git.working_dir.join(".git").exists() {
            blocking(open).await??
        } else {
            // Cloning writes the working copy: only under the engine lock, so it never races
            // a backup (here or on a replica sharing the directory).
            let lock = self.lock(LockKind::Backup, Uuid::new_v4()).await?;
            let result = blocking(open).await;
            lock.release().await;
            result??
        };
        if let Some(c) = &clear {
            tracing::warn!(commit = %c.commit, "{}", c.notice());
        }
        *self.inner.clear_history.lock().unwrap_or_else(|p| p.into_inner()) = clear;
        Ok(())
    }

    /// The newest backup commit made before sealing, if the history has one.
    pub fn clear_history(&self) -> Option<ClearHistory> {
        self.inner
            .clear_history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
        // In the caller's span: the run's log lines keep the request id.
        self.inner
            .tasks
            .spawn(tracing::Instrument::instrument(fut, tracing::Span::current()))
            .await
            .map_err(|e| EngineError::Internal(format!("task failed: {e}")))?
    }

    /// Adds an observer (the mailer, the metrics); each is told of every end.
    pub fn add_observer(&self, observer: Arc<dyn Observer>) {
        self.inner
            .observers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(observer);
    }

    fn observers(&self) -> Vec<Arc<dyn Observer>> {
        self.inner.observers.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Tells the observers, in the background (the caller's answer does not wait for mail).
    /// They share one copy of the report: a first backup's lists every file (at L, 40,000
    /// changes), and a copy for each observer added one to the run's peak of memory.
    pub(crate) fn notify_backup(&self, report: &BackupReport) {
        let observers = self.observers();
        if observers.is_empty() {
            return;
        }
        let report = Arc::new(report.clone());
        for o in observers {
            let (engine, report) = (self.clone(), Arc::clone(&report));
            self.inner
                .tasks
                .spawn(async move { o.backup_finished(&engine, &report).await });
        }
    }

    pub(crate) fn notify_drill(&self, drill: &crate::store::DrillRecord) {
        for o in self.observers() {
            let (engine, drill) = (self.clone(), drill.clone());
            self.inner
                .tasks
                .spawn(async move { o.drill_finished(&engine, &drill).await });
        }
    }

    pub(crate) fn notify_rollback(&self, task: &crate::store::RollbackTask) {
        for o in self.observers() {
            let (engine, task) = (self.clone(), task.clone());
            self.inner
                .tasks
                .spawn(async move { o.rollback_finished(&engine, &task).await });
        }
    }

    /// What one commit changed, per file with line counts (against its parent).
    pub async fn commit_changes(&self, commit: &str) -> Result<DiffResult, EngineError> {
        let git = self.inner.settings.git.clone();
        let sealer = self.inner.sealer.clone();
        let oid = git2::Oid::from_str(commit).map_err(|e| EngineError::Internal(e.to_string()))?;
        blocking(move || -> Result<DiffResult, EngineError> {
            let wc = WorkingCopy::open_existing(&git)?
                .ok_or_else(|| EngineError::NotFound("the backup repository has no commit yet".to_owned()))?;
            crate::diff::commit_changes(&wc, &sealer, oid, crate::diff::DiffLimits::default())
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
        let at = Instant::now();
        let run = self.new_run(&params);
        let run_id = run.id;
        let (lock, interrupted) = self.lock_starting(LockKind::Backup, &run).await?;
        let started = Box::new(lock::Started {
            lock: &lock,
            run,
            at,
            interrupted,
        });
        let result = tracing::Instrument::instrument(
            self.backup_inner(params, specs, CommitTitle::Backup, Held::ByRun(started)),
            tracing::info_span!("backup", run_id = %run_id),
        )
        .await;
        lock.release().await;
        if let Ok(report) = &result {
            self.notify_backup(report);
        }
        result
    }

    /// Whether the branch has any commit yet.
    pub async fn has_commits(&self) -> Result<bool, EngineError> {
        let git = self.inner.settings.git.clone();
        blocking(move || -> Result<bool, EngineError> { Ok(WorkingCopy::open(&git)?.head()?.is_some()) }).await?
    }
}
