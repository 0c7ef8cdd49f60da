//! Rollback of a domain's live files to an earlier commit: validate in a staging copy,
//! snapshot (a commit, and a copy aside on disk), write atomically, reload, verify; on any
//! failure after writing, put the snapshot back and reload again. Every stage is
//! persisted, and streamed to subscribers.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Utc;
use futures::Stream;
use git2::Oid;
use tokio::sync::watch;
use uuid::Uuid;

use crate::command::{self, shell_quote};
use crate::domain::{Actor, CommitPrefix, Domain, RepoPath};
use crate::engine::{BackupParams, CommitTitle, Engine, EngineLock, Held};
use crate::error::{EngineError, blocking};
use crate::fs::write_atomically;
use crate::repo::{self, WorkingCopy};
use crate::secrets::scrub;
use crate::settings::Settings;
use crate::sources;
use crate::store::{LockKind, RollbackStage, RollbackTask, StageRecord, Trigger};

mod files;
mod plan;
mod progress;
mod tasks;

use files::{apply, restore_snapshot, snapshot_changing, stage_files};
use plan::prepare;
use progress::Progress;

/// Which domain(s) to roll back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainChoice {
    /// The domain the target commit belongs to.
    OfCommit,
    /// This domain.
    One(Domain),
    /// Every configured domain.
    All,
}

/// A rollback request, validated.
#[derive(Debug, Clone)]
pub struct RollbackParams {
    /// The target commit.
    pub commit: CommitPrefix,
    /// Which domain(s).
    pub domain: DomainChoice,
    /// Only plan and validate.
    pub dry_run: bool,
    /// Remove live files of the domain that did not exist at the target.
    pub remove_extra: bool,
    /// Why.
    pub reason: String,
    /// The admin (token subject).
    pub requested_by: Uuid,
    /// The request id of the call, kept in the task's record.
    pub request_id: Option<String>,
    /// Apply a target whose signature does not verify with the signing key (an admin's
    /// explicit override, with `reason`; recorded in the task's warnings).
    pub allow_unsigned: bool,
}

/// What a rollback does to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanAction {
    /// Written with the target content.
    Write,
    /// Removed (`remove_extra`).
    Remove,
    /// Already as at the target.
    Unchanged,
}

impl PlanAction {
    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanAction::Write => "write",
            PlanAction::Remove => "remove",
            PlanAction::Unchanged => "unchanged",
        }
    }
}

/// One file of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    /// Its domain.
    pub domain: Domain,
    /// Its path relative to the source root.
    pub path: RepoPath,
    /// What happens to it.
    pub action: PlanAction,
    /// The git mode written.
    pub mode: u32,
    /// Unified diff from the live file to the target.
    pub patch: String,
    /// What changes of type, mode, owner or group the write makes ("mode 0644 → 0600").
    pub metadata_changes: Vec<String>,
    /// What the write changes in the service's own terms (live file → target).
    pub summary: String,
}

/// What a rollback would do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Every file.
    pub files: Vec<PlannedFile>,
    /// Warnings (extra live files left alone, ...).
    pub warnings: Vec<String>,
    /// Validation result (dry runs).
    pub validation_ok: bool,
    /// Validation output (dry runs).
    pub validation_output: String,
}

/// The answer to a rollback request.
#[derive(Debug, Clone)]
pub struct RollbackStart {
    /// The task in its first state (a dry run: its final state, not persisted).
    pub task: RollbackTask,
    /// The plan.
    pub plan: Plan,
}

#[derive(Debug, Clone)]
pub(crate) struct TargetFile {
    pub(crate) domain: Domain,
    pub(crate) path: RepoPath,
    pub(crate) content: Vec<u8>,
    pub(crate) mode: u32,
    /// Type, mode and owners at the target; `None` for a commit made before they were kept.
    pub(crate) meta: Option<crate::metadata::FileMeta>,
}

/// What a domain's validation command said.
#[derive(Debug)]
pub(crate) enum Validation {
    /// The domain has no validation command.
    NotConfigured,
    /// It ran: passed or not, with its summary line and its output.
    Ran {
        /// Whether it passed.
        ok: bool,
        /// `<domain>: validation passed` or why not, with its last lines.
        message: String,
        /// Everything it printed.
        output: String,
    },
    /// It could not be run (staging, service paths).
    CannotRun(String),
}

#[derive(Debug, Clone)]
struct Prepared {
    target: Oid,
    domains: Vec<Domain>,
    files: Vec<TargetFile>,
    removals: Vec<(Domain, RepoPath)>,
    plan: Plan,
    /// The secret values of the target and live files: scrubbed from command output.
    secrets: Vec<String>,
    /// The change the plan told for each file it writes, for the recording run to take.
    summaries: std::sync::Arc<crate::summary::KnownSummaries>,
}

/// The last few non-empty lines of a command's output, bounded: what a failure says.
fn last_lines(output: &str) -> String {
    let lines: Vec<&str> = output.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    crate::domain::bounded(&tail, 600)
}

/// The on-disk snapshot of a task.
fn snapshot_dir(settings: &Settings, task: Uuid) -> PathBuf {
    settings.data_dir.join("rollback").join(task.to_string())
}

impl Engine {
    /// Starts a rollback (or answers a dry run). The work goes on in the background; follow
    /// it with [`Engine::watch_rollback`].
    pub async fn rollback(&self, p: RollbackParams) -> Result<RollbackStart, EngineError> {
        let settings = std::sync::Arc::new(self.settings().clone());
        let s = settings.clone();
        let (commit, choice, remove_extra) = (p.commit.clone(), p.domain.clone(), p.remove_extra);
        let unsigned = p.allow_unsigned.then(|| p.reason.clone());
        let sealer = self.sealer().clone();
        let prepared =
            blocking(move || prepare(&s, &sealer, &commit, &choice, remove_extra, unsigned.as_deref())).await??;
        let now = Utc::now();
        let mut task = RollbackTask {
            id: Uuid::new_v4(),
            domains: prepared.domains.clone(),
            target_hash: prepared.target.to_string(),
            state: RollbackStage::Pending,
            requested_by: p.requested_by,
            reason: p.reason.clone(),
            requested_at: now,
            completed_at: None,
            duration_seconds: None,
            error: None,
            revert_succeeded: false,
            warnings: prepared.plan.warnings.clone(),
            snapshot_commit: None,
            host: crate::store::hostname(),
            dry_run: p.dry_run,
            stages: Vec::new(),
            request_id: p.request_id.clone(),
        };
        if p.dry_run {
            let started = Instant::now();
            let (ok, message, output) = self.validate(&prepared).await;
            let (message, output) = (scrub(&message, &prepared.secrets), scrub(&output, &prepared.secrets));
            let mut plan = prepared.plan.clone();
            plan.validation_ok = ok;
            plan.validation_output = output.clone();
            task.stages.push(StageRecord {
                stage: RollbackStage::Validating,
                started_at: now,
                finished_at: Some(Utc::now()),
                ok,
                message: message.clone(),
                output,
            });
            task.state = if ok {
                RollbackStage::Success
            } else {
                RollbackStage::Failed
            };
            task.error = (!ok).then_some(message);
            task.completed_at = Some(Utc::now());
            task.duration_seconds = Some(started.elapsed().as_secs_f64());
            return Ok(RollbackStart { task, plan });
        }
        if self.tasks_closed() {
            return Err(EngineError::Internal("the server is shutting down".to_owned()));
        }
        let lock = self.lock(LockKind::Rollback, task.id).await?;
        if let Err(e) = self.store().insert_rollback_task(&task).await {
            lock.release().await;
            return Err(e.into());
        }
        tracing::info!(
            task = %task.id,
            target = %task.target_hash,
            domains = ?task.domains.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
            by = %task.requested_by,
            "rollback accepted"
        );
        let (tx, _) = watch::channel(task.clone());
        self.register_rollback(task.id, tx.clone());
        let plan = prepared.plan.clone();
        let this = self.clone();
        let first = task.clone();
        let span = tracing::info_span!("rollback", task = %task.id);
        self.spawn_task(tracing::Instrument::instrument(
            async move {
                let mut progress = Progress {
                    engine: this.clone(),
                    task,
                    tx,
                    touched: false,
                    scrub: prepared.secrets.clone(),
                    span: tracing::Span::none(),
                };
                this.execute(&mut progress, prepared).await;
                progress.conclude(lock).await;
                this.remove_snapshot(progress.task.id).await;
                this.notify_rollback(&progress.task);
                this.forget_rollback_later(progress.task.id);
            },
            span,
        ));
        Ok(RollbackStart { task: first, plan })
    }

    /// Runs every domain's validation command on the staged target files.
    async fn validate(&self, prepared: &Prepared) -> (bool, String, String) {
        let mut output = String::new();
        let mut messages = Vec::new();
        let mut ok = true;
        for d in &prepared.domains {
            match self.validate_domain(*d, &prepared.files).await {
                Validation::NotConfigured => messages.push(format!("{d}: no validation command configured")),
                Validation::Ran {
                    ok: passed,
                    message,
                    output: o,
                } => {
                    output.push_str(&o);
                    messages.push(message);
                    ok &= passed;
                }
                Validation::CannotRun(e) => return (false, e, output),
            }
        }
        (ok, messages.join("; "), output)
    }

    /// Runs `domain`'s validation command on its files of `files`, staged in a private
    /// directory (at the service's own paths when configured): a rollback's first stage,
    /// and a restore drill's last check.
    pub(crate) async fn validate_domain(&self, d: Domain, files: &[TargetFile]) -> Validation {
        let settings = self.settings();
        let Some(cmd) = settings.rollback.commands(d).validate else {
            return Validation::NotConfigured;
        };
        // The staged files are the real ones, secrets in clear: only the service's user
        // may enter the directory, and it is removed when `staging` drops.
        let staging = match tempfile::Builder::new()
            .prefix("config-rollback-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
        {
            Ok(t) => t,
            Err(e) => return Validation::CannotRun(format!("cannot create a staging directory: {e}")),
        };
        let (dir, files) = (staging.path().to_path_buf(), files.to_vec());
        match blocking(move || stage_files(&dir, &files, d)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) | Err(EngineError::Internal(e)) => return Validation::CannotRun(e),
            Err(e) => return Validation::CannotRun(e.to_string()),
        }
        let dir = staging.path().display().to_string();
        let mut line = cmd.replace("{dir}", &shell_quote(&dir));
        let service_paths = settings.rollback.commands(d).service_paths;
        if !service_paths.is_empty() {
            // The checker reads the target where the service reads its files.
            let (l, staged) = (line.clone(), staging.path().to_path_buf());
            line = match blocking(move || crate::service_paths::sandboxed(&l, &staged, &service_paths)).await {
                Ok(Ok(l)) => l,
                Ok(Err(e)) => return Validation::CannotRun(format!("{d}: cannot prepare the service paths: {e}")),
                Err(e) => return Validation::CannotRun(e.to_string()),
            };
        }
        let timeout = settings.rollback.command_timeout;
        let vars = [
            ("CONFIG_ROLLBACK_DIR", dir.clone()),
            ("CONFIG_ROLLBACK_DOMAIN", d.to_string()),
        ];
        let r = command::run(&line, staging.path(), &vars, timeout).await;
        let message = if r.ok {
            format!("{d}: {}", r.summary("validation", timeout))
        } else {
            // The checker's own words: the last lines it printed.
            format!("{d}: {}: {}", r.summary("validation", timeout), last_lines(&r.output))
        };
        Validation::Ran {
            ok: r.ok,
            message,
            output: r.output,
        }
    }

    /// Runs one kind of command (reload or verify) for every domain.
    async fn run_domain_commands(&self, domains: &[Domain], which: &str) -> (bool, String, String) {
        let settings = self.settings();
        let mut output = String::new();
        let mut messages = Vec::new();
        let mut ok = true;
        for d in domains {
            let c = settings.rollback.commands(*d);
            let Some(cmd) = (if which == "reload" { c.reload } else { c.verify }) else {
                messages.push(format!("{d}: no {which} command configured"));
                continue;
            };
            let timeout = settings.rollback.command_timeout;
            let vars = [("CONFIG_ROLLBACK_DOMAIN", d.to_string())];
            let r = command::run(&cmd, &settings.source_root, &vars, timeout).await;
            output.push_str(&r.output);
            messages.push(format!("{d}: {}", r.summary(which, timeout)));
            ok &= r.ok;
            if !r.ok {
                break;
            }
        }
        (ok, messages.join("; "), output)
    }

    async fn execute(&self, progress: &mut Progress, prepared: Prepared) {
        let deadline = self.settings().rollback.deadline;
        let result = match tokio::time::timeout(deadline, self.stages(progress, &prepared)).await {
            Ok(r) => r,
            Err(_) => {
                if let Some(st) = progress.task.stages.last_mut().filter(|s| s.finished_at.is_none()) {
                    st.finished_at = Some(Utc::now());
                    st.message = "stopped at the rollback deadline".to_owned();
                }
                Err(format!(
                    "the rollback did not finish within its deadline of {} s",
                    deadline.as_secs()
                ))
            }
        };
        match result {
            Ok(()) => {
                // Record the new live state in the backup repository.
                let specs = self.domain_specs(&prepared.domains);
                let title = CommitTitle::Rollback {
                    target: prepared.target.to_string(),
                    task: progress.task.id,
                };
                let params = BackupParams::new(
                    Trigger::Rollback,
                    Actor::User(progress.task.requested_by.to_string()),
                    Vec::new(),
                )
                .with_request_id(progress.task.request_id.clone())
                .with_summaries(prepared.summaries.clone());
                match self.backup_inner(params, specs, title, Held::ByCaller).await {
                    Ok(r) if r.run.commits > 0 => {}
                    Ok(r) => progress.task.warnings.push(format!(
                        "the rollback commit failed: {}",
                        r.run.error.unwrap_or_default()
                    )),
                    Err(e) => progress.task.warnings.push(format!("the rollback commit failed: {e}")),
                }
                progress.finish(RollbackStage::Success, None, false).await;
            }
            Err(error) if progress.touched => {
                let (reverted, message) = self.revert(progress, &prepared.domains).await;
                progress
                    .finish(RollbackStage::Failed, Some(format!("{error}; {message}")), reverted)
                    .await;
            }
            Err(error) => progress.finish(RollbackStage::Failed, Some(error), false).await,
        }
    }

    /// Removes a task's snapshot (the live files it set aside, secrets in clear), once its
    /// end is recorded: off the request's path, where unlinking hundreds of files (each a
    /// discard, on a filesystem mounted with `discard`) took tens of milliseconds. One left
    /// by a server stopped in between is removed at the next start
    /// ([`Engine::recover_interrupted_rollbacks`]).
    async fn remove_snapshot(&self, task: Uuid) {
        let dir = snapshot_dir(self.settings(), task);
        if let Ok(Err(e)) = blocking(move || std::fs::remove_dir_all(&dir).map_err(|e| (dir, e))).await
            && e.1.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(task = %task, dir = %e.0.display(), error = %e.1, "could not remove the rollback's snapshot");
        }
    }

    /// Puts the snapshot back and reloads.
    async fn revert(&self, progress: &mut Progress, domains: &[Domain]) -> (bool, String) {
        progress.begin(RollbackStage::Reverting).await;
        let dir = snapshot_dir(self.settings(), progress.task.id);
        let root = self.settings().source_root.clone();
        let restored = progress
            .in_stage(blocking(move || restore_snapshot(&dir, &root)))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        let (ok, message, output) = match restored {
            Ok(n) => {
                let (reload_ok, reload_msg, out) = progress.in_stage(self.run_domain_commands(domains, "reload")).await;
                let msg = format!("the previous files were put back ({n} restored); {reload_msg}");
                (reload_ok, msg, out)
            }
            Err(e) => (false, format!("REVERT FAILED: {e}"), String::new()),
        };
        progress.end(ok, message.clone(), output).await;
        (ok, if ok { format!("reverted: {message}") } else { message })
    }

    async fn stages(&self, progress: &mut Progress, prepared: &Prepared) -> Result<(), String> {
        let settings = self.settings().clone();

        progress.begin(RollbackStage::Validating).await;
        let (ok, message, output) = progress.in_stage(self.validate(prepared)).await;
        progress.end(ok, message.clone(), output).await;
        if !ok {
            return Err(format!("validation failed, nothing was changed: {message}"));
        }

        progress.begin(RollbackStage::Snapshot).await;
        // Only what applying will change is set aside.
        let (dir, root, files, removals) = (
            snapshot_dir(&settings, progress.task.id),
            settings.source_root.clone(),
            prepared.files.clone(),
            prepared.removals.clone(),
        );
        let (saved, covered) = match progress
            .in_stage(blocking(move || snapshot_changing(&dir, &root, &files, &removals)))
            .await
        {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                progress
                    .end(false, format!("snapshot failed: {e}"), String::new())
                    .await;
                return Err(format!("snapshot failed, nothing was changed: {e}"));
            }
            Err(e) => return Err(e.to_string()),
        };
        let specs = self.domain_specs(&prepared.domains);
        let params = BackupParams::new(
            Trigger::Rollback,
            Actor::User(progress.task.requested_by.to_string()),
            Vec::new(),
        )
        .with_request_id(progress.task.request_id.clone());
        match progress
            .in_stage(self.backup_inner(params, specs, CommitTitle::Backup, Held::ByCaller))
            .await
        {
            Ok(r) if r.run.commits > 0 => {
                progress.task.snapshot_commit = r
                    .domains
                    .iter()
                    .rev()
                    .find_map(|d| d.commit.as_ref().map(|c| c.to_string()));
            }
            Ok(r) => {
                let e = r.run.error.unwrap_or_default();
                progress
                    .end(false, format!("the snapshot commit failed: {e}"), String::new())
                    .await;
                return Err(format!("the snapshot commit failed, nothing was changed: {e}"));
            }
            Err(e) => {
                progress
                    .end(false, format!("the snapshot commit failed: {e}"), String::new())
                    .await;
                return Err(format!("the snapshot commit failed, nothing was changed: {e}"));
            }
        }
        let commit = progress.task.snapshot_commit.clone().unwrap_or_default();
        progress
            .end(
                true,
                format!(
                    "live files committed as {}; {saved} files saved aside",
                    &commit[..7.min(commit.len())]
                ),
                String::new(),
            )
            .await;

        progress.begin(RollbackStage::Applying).await;
        progress.touched = true;
        let (root, files, removals) = (
            settings.source_root.clone(),
            prepared.files.clone(),
            prepared.removals.clone(),
        );
        match progress
            .in_stage(blocking(move || apply(&root, &files, &removals, &covered)))
            .await
        {
            Ok(Ok((written, removed))) => {
                progress
                    .end(
                        true,
                        format!("{written} files written, {removed} removed"),
                        String::new(),
                    )
                    .await;
            }
            Ok(Err(e)) => {
                progress.end(false, e.clone(), String::new()).await;
                return Err(format!("applying failed: {e}"));
            }
            Err(e) => return Err(e.to_string()),
        }

        for (stage, which) in [
            (RollbackStage::Reloading, "reload"),
            (RollbackStage::Verifying, "verify"),
        ] {
            progress.begin(stage).await;
            let (ok, message, output) = progress
                .in_stage(self.run_domain_commands(&prepared.domains, which))
                .await;
            progress.end(ok, message.clone(), output).await;
            if !ok {
                return Err(format!("{which} failed: {message}"));
            }
        }
        Ok(())
    }

    fn domain_specs(&self, domains: &[Domain]) -> Vec<crate::settings::DomainSpec> {
        self.settings()
            .domains
            .iter()
            .filter(|s| domains.contains(&s.domain))
            .cloned()
            .collect()
    }
}
