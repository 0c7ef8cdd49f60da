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
use crate::engine::{BackupParams, CommitTitle, Engine, EngineLock};
use crate::error::{EngineError, blocking};
use crate::repo::{self, WorkingCopy, write_all_atomically, write_atomically};
use crate::settings::Settings;
use crate::sources;
use crate::store::{LockKind, RollbackStage, RollbackTask, StageRecord, Trigger};

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
struct TargetFile {
    domain: Domain,
    path: RepoPath,
    content: Vec<u8>,
    mode: u32,
}

#[derive(Debug, Clone)]
struct Prepared {
    target: Oid,
    domains: Vec<Domain>,
    files: Vec<TargetFile>,
    removals: Vec<(Domain, RepoPath)>,
    plan: Plan,
}

const PATCH_CAP: usize = 64 * 1024;

/// The live path of a repository path: under the source root; a symlink is followed
/// when it stays inside the root; nothing is ever written outside it.
fn live_path(root: &Path, rel: &RepoPath) -> Result<PathBuf, String> {
    let root = root.canonicalize().map_err(|e| format!("source root: {e}"))?;
    let abs = root.join(rel.as_str());
    if let Ok(meta) = std::fs::symlink_metadata(&abs)
        && meta.file_type().is_symlink()
    {
        let target = abs.canonicalize().map_err(|_| format!("{rel}: a dangling symlink"))?;
        return if target.starts_with(&root) {
            Ok(target)
        } else {
            Err(format!("{rel}: the symlink leads outside the source root"))
        };
    }
    let mut ancestor = abs.parent();
    while let Some(dir) = ancestor {
        if dir.exists() {
            let canon = dir.canonicalize().map_err(|e| format!("{rel}: {e}"))?;
            return if canon.starts_with(&root) {
                Ok(abs)
            } else {
                Err(format!("{rel}: leads outside the source root"))
            };
        }
        ancestor = dir.parent();
    }
    Err(format!("{rel}: no existing parent directory"))
}

fn read_live(path: &Path) -> Option<(Vec<u8>, u32)> {
    let content = std::fs::read(path).ok()?;
    let exec = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false);
    Some((content, repo::git_mode(exec)))
}

fn unix_mode(git_mode: u32) -> u32 {
    if git_mode & 0o111 != 0 { 0o755 } else { 0o644 }
}

fn patch(path: &str, old: &[u8], new: &[u8]) -> String {
    let Ok(mut p) = git2::Patch::from_buffers(old, Some(Path::new(path)), new, Some(Path::new(path)), None) else {
        return String::new();
    };
    if p.delta().flags().is_binary() {
        return format!("Binary files a/{path} and b/{path} differ\n");
    }
    let text = p
        .to_buf()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    if text.len() > PATCH_CAP {
        let mut end = PATCH_CAP;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        return format!("{}\n[patch truncated]\n", &text[..end]);
    }
    text
}

/// Resolves the target, reads its files and plans (blocking).
fn prepare(
    settings: &Settings,
    commit: &CommitPrefix,
    choice: &DomainChoice,
    remove_extra: bool,
) -> Result<Prepared, EngineError> {
    let wc = WorkingCopy::open_existing(&settings.git)?
        .ok_or_else(|| EngineError::NotFound("the backup repository has no commit yet".to_owned()))?;
    let repo = wc.repository();
    let target = crate::diff::resolve(repo, commit, "commit")?;
    let domains = match choice {
        DomainChoice::One(d) => vec![*d],
        DomainChoice::All => settings.domains.iter().map(|d| d.domain).collect(),
        DomainChoice::OfCommit => {
            let info = wc
                .commit_info(target)
                .map_err(|e| EngineError::Internal(e.to_string()))?;
            match info {
                Some(i) => vec![i.domain],
                None => {
                    return Err(EngineError::InvalidArgument {
                        field: "domain",
                        message: format!(
                            "commit {} is not a backup commit of one domain: name the domain ({}) or all",
                            commit.as_str(),
                            settings.configured_domains()
                        ),
                    });
                }
            }
        }
    };
    for d in &domains {
        if settings.domain(*d).is_none() {
            return Err(EngineError::InvalidArgument {
                field: "domain",
                message: format!(
                    "domain {d} is not configured: configured domains are {}",
                    settings.configured_domains()
                ),
            });
        }
    }
    let tree = repo
        .find_commit(target)
        .and_then(|c| c.tree())
        .map_err(|e| EngineError::Internal(e.to_string()))?;
    let mut files = Vec::new();
    let mut plan = Plan::default();
    let mut removals = Vec::new();
    for d in &domains {
        let manifest = wc
            .manifest_at(Some(target), *d)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        if manifest.is_empty() {
            return Err(EngineError::InvalidArgument {
                field: "commit",
                message: format!("domain {d} has no files at commit {}", commit.as_str()),
            });
        }
        for (path, entry) in &manifest {
            let blob = tree
                .get_path(Path::new(path.as_str()))
                .and_then(|e| repo.find_blob(e.id()))
                .map_err(|e| EngineError::Internal(format!("{path} at {target}: {e}")))?;
            let live = live_path(&settings.source_root, path).map_err(|m| EngineError::InvalidArgument {
                field: "commit",
                message: m,
            })?;
            let current = read_live(&live);
            let content = blob.content().to_vec();
            let action = match &current {
                Some((c, m)) if *c == content && *m == entry.mode => PlanAction::Unchanged,
                _ => PlanAction::Write,
            };
            let old = current.as_ref().map(|(c, _)| c.as_slice()).unwrap_or(&[]);
            let p = if action == PlanAction::Write {
                patch(path.as_str(), old, &content)
            } else {
                String::new()
            };
            plan.files.push(PlannedFile {
                domain: *d,
                path: path.clone(),
                action,
                mode: entry.mode,
                patch: p,
            });
            files.push(TargetFile {
                domain: *d,
                path: path.clone(),
                content,
                mode: entry.mode,
            });
        }
        // Live files of the domain that the target does not have.
        let spec = settings.domain(*d).expect("checked above");
        let scan = sources::scan(&settings.source_root, &spec.patterns)
            .map_err(|e| EngineError::Internal(format!("reading the source root: {e}")))?;
        for f in scan.files {
            if manifest.contains_key(&f.path) {
                continue;
            }
            if remove_extra {
                let current = read_live(&f.abs);
                let old = current.as_ref().map(|(c, _)| c.as_slice()).unwrap_or(&[]);
                plan.files.push(PlannedFile {
                    domain: *d,
                    path: f.path.clone(),
                    action: PlanAction::Remove,
                    mode: current.as_ref().map(|(_, m)| *m).unwrap_or(0o100644),
                    patch: patch(f.path.as_str(), old, &[]),
                });
                removals.push((*d, f.path));
            } else {
                plan.warnings.push(format!(
                    "{}: exists now but not at the target; left alone (remove_extra=false)",
                    f.path
                ));
            }
        }
    }
    Ok(Prepared {
        target,
        domains,
        files,
        removals,
        plan,
    })
}

/// Writes one domain's target files into `dir`.
fn stage_files(dir: &Path, files: &[TargetFile], domain: Domain) -> Result<(), String> {
    let items: Vec<(PathBuf, &[u8], u32)> = files
        .iter()
        .filter(|f| f.domain == domain)
        .map(|f| (dir.join(f.path.as_str()), f.content.as_slice(), unix_mode(f.mode)))
        .collect();
    write_all_atomically(&items).map_err(|(p, e)| format!("staging {}: {e}", p.display()))
}

/// Sets the live state of every path the rollback touches aside, then marks the snapshot
/// complete (the last write). A live file is hard-linked into the snapshot when it can be
/// (same filesystem, a regular file): applying replaces live files by renaming new ones
/// over them, so the linked inode keeps the old content untouched, and a link costs no
/// copy. Otherwise its content is copied.
fn write_snapshot(dir: &Path, root: &Path, paths: &[RepoPath]) -> Result<usize, String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("files")).map_err(|e| format!("snapshot {}: {e}", dir.display()))?;
    let mut manifest = String::new();
    let mut copies: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let mut linked: Vec<PathBuf> = Vec::new();
    for rel in paths {
        let live = live_path(root, rel)?;
        let saved = dir.join("files").join(rel.as_str());
        let regular = std::fs::symlink_metadata(&live).is_ok_and(|m| m.file_type().is_file());
        if regular {
            let parent = saved.parent().unwrap_or(dir);
            std::fs::create_dir_all(parent).map_err(|e| format!("snapshot {}: {e}", parent.display()))?;
            if std::fs::hard_link(&live, &saved).is_ok() {
                let exec = std::fs::metadata(&saved).is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
                manifest.push_str(&format!("present {:o} {rel}\n", repo::git_mode(exec)));
                linked.push(saved);
                continue;
            }
        }
        match read_live(&live) {
            Some((content, mode)) => {
                manifest.push_str(&format!("present {mode:o} {rel}\n"));
                copies.push((saved, content));
            }
            None => manifest.push_str(&format!("absent - {rel}\n")),
        }
    }
    let saved = manifest.lines().filter(|l| l.starts_with("present ")).count();
    // Every link, copy and the manifest are durable before the marker says so. A linked
    // file is synced by itself: cheap when its data is already on disk (only the new link
    // is journaled, once for all), and it has to be if it is not. Copies are flushed
    // together.
    for path in &linked {
        std::fs::File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|e| format!("snapshot {}: {e}", path.display()))?;
    }
    for d in linked
        .iter()
        .filter_map(|p| p.parent())
        .collect::<std::collections::BTreeSet<_>>()
    {
        std::fs::File::open(d)
            .and_then(|f| f.sync_all())
            .map_err(|e| format!("snapshot {}: {e}", d.display()))?;
    }
    if !copies.is_empty() {
        let items: Vec<(PathBuf, &[u8], u32)> = copies.iter().map(|(p, c)| (p.clone(), c.as_slice(), 0o600)).collect();
        write_all_atomically(&items).map_err(|(p, e)| format!("snapshot {}: {e}", p.display()))?;
    }
    write_atomically(&dir.join("manifest"), manifest.as_bytes(), 0o600)
        .map_err(|e| format!("snapshot manifest: {e}"))?;
    write_atomically(&dir.join("complete"), b"", 0o600).map_err(|e| format!("snapshot marker: {e}"))?;
    Ok(saved)
}

/// Puts a snapshot back: saved files rewritten atomically, files that did not exist removed.
fn restore_snapshot(dir: &Path, root: &Path) -> Result<usize, String> {
    if !dir.join("complete").exists() {
        return Err(format!("the snapshot in {} is incomplete", dir.display()));
    }
    let manifest = std::fs::read_to_string(dir.join("manifest")).map_err(|e| format!("snapshot manifest: {e}"))?;
    let mut errors = Vec::new();
    let mut writes: Vec<(PathBuf, Vec<u8>, u32)> = Vec::new();
    let mut removals = Vec::new();
    for line in manifest.lines() {
        let mut parts = line.splitn(3, ' ');
        let (Some(kind), Some(mode), Some(rel)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(rel) = rel.parse::<RepoPath>() else { continue };
        let live = match live_path(root, &rel) {
            Ok(l) => l,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if kind == "present" {
            let mode = u32::from_str_radix(mode, 8).unwrap_or(0o100644);
            match std::fs::read(dir.join("files").join(rel.as_str())) {
                Ok(content) => writes.push((live, content, unix_mode(mode))),
                Err(e) => errors.push(format!("{rel}: {e}")),
            }
        } else {
            removals.push((rel, live));
        }
    }
    let mut restored = 0;
    let items: Vec<(PathBuf, &[u8], u32)> = writes.iter().map(|(p, c, m)| (p.clone(), c.as_slice(), *m)).collect();
    if write_all_atomically(&items).is_ok() {
        restored += items.len();
    } else {
        // Put back as many as possible, one by one, and name each that fails.
        for (live, content, mode) in &items {
            match write_atomically(live, content, *mode) {
                Ok(()) => restored += 1,
                Err(e) => errors.push(format!("{}: {e}", live.display())),
            }
        }
    }
    for (rel, live) in removals {
        match std::fs::remove_file(&live) {
            Ok(()) => restored += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => restored += 1,
            Err(e) => errors.push(format!("{rel}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(restored)
    } else {
        Err(errors.join("; "))
    }
}

/// Applies the target: every file written atomically, extras removed.
fn apply(root: &Path, files: &[TargetFile], removals: &[(Domain, RepoPath)]) -> Result<(usize, usize), String> {
    let mut items: Vec<(PathBuf, &[u8], u32)> = Vec::new();
    for f in files {
        let live = live_path(root, &f.path)?;
        if read_live(&live).is_some_and(|(c, m)| c == f.content && m == f.mode) {
            continue;
        }
        items.push((live, f.content.as_slice(), unix_mode(f.mode)));
    }
    let written = items.len();
    write_all_atomically(&items).map_err(|(p, e)| format!("writing {}: {e}", p.display()))?;
    let mut removed = 0;
    for (_, rel) in removals {
        let live = live_path(root, rel)?;
        match std::fs::remove_file(&live) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("removing {rel}: {e}")),
        }
    }
    Ok((written, removed))
}

/// A task's progress: persisted at every step and sent to subscribers.
struct Progress {
    engine: Engine,
    task: RollbackTask,
    tx: watch::Sender<RollbackTask>,
    touched: bool,
}

impl Progress {
    async fn publish(&mut self) {
        if let Err(e) = self.engine.store().save_rollback_task(&self.task, None).await {
            tracing::error!(task = %self.task.id, error = %e, "could not record the rollback's progress");
        }
        self.tx.send_replace(self.task.clone());
    }

    async fn begin(&mut self, stage: RollbackStage) {
        self.task.state = stage;
        self.task.stages.push(StageRecord {
            stage,
            started_at: Utc::now(),
            finished_at: None,
            ok: false,
            message: String::new(),
            output: String::new(),
        });
        tracing::info!(task = %self.task.id, stage = stage.as_str(), "rollback stage started");
        self.publish().await;
    }

    async fn end(&mut self, ok: bool, message: impl Into<String>, output: String) {
        let message = message.into();
        if let Some(st) = self.task.stages.last_mut() {
            st.finished_at = Some(Utc::now());
            st.ok = ok;
            st.message = message.clone();
            st.output = output;
        }
        tracing::info!(task = %self.task.id, stage = self.task.state.as_str(), ok, message = %message, "rollback stage ended");
        self.publish().await;
    }

    async fn finish(&mut self, state: RollbackStage, error: Option<String>, revert_succeeded: bool) {
        self.task.state = state;
        self.task.error = error;
        self.task.revert_succeeded = revert_succeeded;
        let now = Utc::now();
        let took = (now - self.task.requested_at).num_microseconds().unwrap_or(0) as f64 / 1e6;
        self.task.completed_at = Some(now);
        self.task.duration_seconds = Some(took);
        tracing::info!(
            task = %self.task.id,
            state = state.as_str(),
            revert_succeeded,
            duration_ms = (took * 1000.0) as u64,
            error = self.task.error.as_deref().unwrap_or(""),
            "rollback finished"
        );
    }

    /// Records the terminal state and releases the lock in one transaction, then tells the
    /// subscribers: whoever sees the end of a rollback can start the next one at once.
    async fn conclude(&mut self, lock: EngineLock) {
        lock.stop_renewing();
        if let Err(e) = self
            .engine
            .store()
            .save_rollback_task(&self.task, Some(lock.id()))
            .await
        {
            tracing::error!(task = %self.task.id, error = %e, "could not record the rollback's end");
            lock.release().await;
        }
        self.tx.send_replace(self.task.clone());
    }
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
        let prepared = blocking(move || prepare(&s, &commit, &choice, remove_extra)).await??;
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
        };
        if p.dry_run {
            let started = Instant::now();
            let (ok, message, output) = self.validate(&prepared).await;
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
        self.spawn_task(async move {
            let mut progress = Progress {
                engine: this.clone(),
                task,
                tx,
                touched: false,
            };
            this.execute(&mut progress, prepared).await;
            progress.conclude(lock).await;
            this.notify_rollback(&progress.task);
            this.forget_rollback_later(progress.task.id);
        });
        Ok(RollbackStart { task: first, plan })
    }

    /// Runs every domain's validation command on the staged target files.
    async fn validate(&self, prepared: &Prepared) -> (bool, String, String) {
        let settings = self.settings();
        let mut output = String::new();
        let mut messages = Vec::new();
        let mut ok = true;
        for d in &prepared.domains {
            let Some(cmd) = settings.rollback.commands(*d).validate else {
                messages.push(format!("{d}: no validation command configured"));
                continue;
            };
            let staging = match tempfile::Builder::new().prefix("config-rollback-").tempdir() {
                Ok(t) => t,
                Err(e) => return (false, format!("cannot create a staging directory: {e}"), output),
            };
            let (dir, files, domain) = (staging.path().to_path_buf(), prepared.files.clone(), *d);
            match blocking(move || stage_files(&dir, &files, domain)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) | Err(EngineError::Internal(e)) => return (false, e, output),
                Err(e) => return (false, e.to_string(), output),
            }
            let dir = staging.path().display().to_string();
            let line = cmd.replace("{dir}", &shell_quote(&dir));
            let timeout = settings.rollback.command_timeout;
            let vars = [
                ("CONFIG_ROLLBACK_DIR", dir.clone()),
                ("CONFIG_ROLLBACK_DOMAIN", d.to_string()),
            ];
            let r = command::run(&line, staging.path(), &vars, timeout).await;
            output.push_str(&r.output);
            messages.push(format!("{d}: {}", r.summary("validation", timeout)));
            ok &= r.ok;
        }
        (ok, messages.join("; "), output)
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
                );
                match self.backup_inner(Uuid::new_v4(), params, specs, title).await {
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
        let dir = snapshot_dir(self.settings(), progress.task.id);
        let _ = blocking(move || std::fs::remove_dir_all(dir)).await;
    }

    /// Puts the snapshot back and reloads.
    async fn revert(&self, progress: &mut Progress, domains: &[Domain]) -> (bool, String) {
        progress.begin(RollbackStage::Reverting).await;
        let dir = snapshot_dir(self.settings(), progress.task.id);
        let root = self.settings().source_root.clone();
        let restored = blocking(move || restore_snapshot(&dir, &root))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        let (ok, message, output) = match restored {
            Ok(n) => {
                let (reload_ok, reload_msg, out) = self.run_domain_commands(domains, "reload").await;
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
        let (ok, message, output) = self.validate(prepared).await;
        progress.end(ok, message.clone(), output).await;
        if !ok {
            return Err(format!("validation failed, nothing was changed: {message}"));
        }

        progress.begin(RollbackStage::Snapshot).await;
        let paths: Vec<RepoPath> = prepared
            .files
            .iter()
            .map(|f| f.path.clone())
            .chain(prepared.removals.iter().map(|(_, p)| p.clone()))
            .collect();
        let (dir, root) = (snapshot_dir(&settings, progress.task.id), settings.source_root.clone());
        let saved = match blocking(move || write_snapshot(&dir, &root, &paths)).await {
            Ok(Ok(n)) => n,
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
        );
        match self
            .backup_inner(Uuid::new_v4(), params, specs, CommitTitle::Backup)
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
        match blocking(move || apply(&root, &files, &removals)).await {
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
            let (ok, message, output) = self.run_domain_commands(&prepared.domains, which).await;
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

    /// A task's current state (from this process if it runs here, else the database).
    pub async fn rollback_task(&self, id: Uuid) -> Result<Option<RollbackTask>, EngineError> {
        if let Some(tx) = self.live_rollback(id) {
            return Ok(Some(tx.borrow().clone()));
        }
        Ok(self.store().rollback_task(id).await?)
    }

    /// The task's states: first the current one, then each change, ending after the
    /// terminal state. A task running on another replica is followed through the database.
    pub async fn watch_rollback(
        &self,
        id: Uuid,
    ) -> Result<impl Stream<Item = RollbackTask> + Send + 'static, EngineError> {
        enum Source {
            Live(watch::Receiver<RollbackTask>),
            Poll(Engine),
        }
        let (first, source) = match self.live_rollback(id) {
            Some(tx) => {
                let mut rx = tx.subscribe();
                let first = rx.borrow_and_update().clone();
                (first, Source::Live(rx))
            }
            None => {
                let task = self
                    .store()
                    .rollback_task(id)
                    .await?
                    .ok_or_else(|| EngineError::NotFound(format!("task_id: no rollback task {id}")))?;
                (task, Source::Poll(self.clone()))
            }
        };
        let state = Some((Some(first), source, None::<RollbackTask>));
        Ok(futures::stream::unfold(state, move |state| async move {
            let (pending, mut source, last) = state?;
            if let Some(task) = pending {
                let done = task.state.is_terminal();
                let next = if done {
                    None
                } else {
                    Some((None, source, Some(task.clone())))
                };
                return Some((task, next));
            }
            loop {
                let task = match &mut source {
                    Source::Live(rx) => {
                        if rx.changed().await.is_err() {
                            let t = rx.borrow().clone();
                            // The sender is gone: the last value is final.
                            return if Some(&t) == last.as_ref() {
                                None
                            } else {
                                Some((t, None))
                            };
                        }
                        rx.borrow_and_update().clone()
                    }
                    Source::Poll(engine) => {
                        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                        match engine.store().rollback_task(id).await {
                            Ok(Some(t)) => t,
                            _ => continue,
                        }
                    }
                };
                if Some(&task) == last.as_ref() {
                    continue;
                }
                let done = task.state.is_terminal();
                let next = if done {
                    None
                } else {
                    Some((None, source, Some(task.clone())))
                };
                return Some((task, next));
            }
        }))
    }

    /// At start: rollbacks left unfinished by a stopped server. One that had passed
    /// Snapshot is reverted to its snapshot; every one is marked failed ("interrupted").
    pub async fn recover_interrupted_rollbacks(&self) -> Result<usize, EngineError> {
        let mut recovered = 0;
        for task in self.store().unfinished_rollback_tasks().await? {
            if self.live_rollback(task.id).is_some() {
                continue;
            }
            // Its own lock id: only taken when the process that ran it is gone.
            let lock = match self.lock(LockKind::Rollback, task.id).await {
                Ok(l) => l,
                Err(EngineError::Busy(holder)) => {
                    tracing::info!(task = %task.id, %holder, "an unfinished rollback is still held; not recovering it now");
                    continue;
                }
                Err(e) => return Err(e),
            };
            let interrupted_in = task.state;
            let domains = task.domains.clone();
            let dir = snapshot_dir(self.settings(), task.id);
            let (tx, _) = watch::channel(task.clone());
            let mut progress = Progress {
                engine: self.clone(),
                task,
                tx,
                touched: false,
            };
            let passed_snapshot = dir.join("complete").exists()
                && progress.task.stages.iter().any(|s| {
                    matches!(
                        s.stage,
                        RollbackStage::Applying
                            | RollbackStage::Reloading
                            | RollbackStage::Verifying
                            | RollbackStage::Reverting
                    )
                });
            if passed_snapshot {
                let (reverted, message) = self.revert(&mut progress, &domains).await;
                let error = format!(
                    "interrupted: the server stopped during {}; {message}",
                    interrupted_in.as_str()
                );
                progress.finish(RollbackStage::Failed, Some(error), reverted).await;
            } else {
                let error = format!(
                    "interrupted: the server stopped during {}, before any file was written",
                    interrupted_in.as_str()
                );
                progress.finish(RollbackStage::Failed, Some(error), false).await;
            }
            let _ = blocking(move || std::fs::remove_dir_all(dir)).await;
            progress.conclude(lock).await;
            self.notify_rollback(&progress.task);
            recovered += 1;
        }
        Ok(recovered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_paths_never_leave_the_root() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("config")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("config/out")).unwrap();
        std::fs::write(root.path().join("config/real.conf"), "x").unwrap();
        std::os::unix::fs::symlink(
            root.path().join("config/real.conf"),
            root.path().join("config/link.conf"),
        )
        .unwrap();
        let p = |s: &str| s.parse::<RepoPath>().unwrap();
        assert!(live_path(root.path(), &p("config/out/evil.conf")).is_err());
        assert!(live_path(root.path(), &p("config/new/dir/file.conf")).is_ok());
        let link = live_path(root.path(), &p("config/link.conf")).unwrap();
        assert!(link.ends_with("config/real.conf"), "{}", link.display());
    }

    #[test]
    fn a_snapshot_restores_files_and_removes_new_ones() {
        let root = tempfile::tempdir().unwrap();
        let snap = tempfile::tempdir().unwrap();
        let p = |s: &str| s.parse::<RepoPath>().unwrap();
        std::fs::write(root.path().join("a.conf"), "old").unwrap();
        write_snapshot(&snap.path().join("s"), root.path(), &[p("a.conf"), p("b.conf")]).unwrap();
        // As `apply` replaces a file: a new one renamed over it.
        write_atomically(&root.path().join("a.conf"), b"new", 0o644).unwrap();
        std::fs::write(root.path().join("b.conf"), "created").unwrap();
        restore_snapshot(&snap.path().join("s"), root.path()).unwrap();
        assert_eq!(std::fs::read_to_string(root.path().join("a.conf")).unwrap(), "old");
        assert!(!root.path().join("b.conf").exists());
    }
}
