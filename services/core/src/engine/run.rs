//! A run: for each domain, scan, hash (and seal), stage and commit; then push and
//! record. The blocking part runs on the blocking pool.

use super::hashing::{Pending, SealContext, hash_and_stage};
use super::message::{Trailers, commit_message};
use super::*;
use crate::secrets::Sealer;
use tracing::Instrument;

impl Engine {
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
            request_id: params.request_id.clone(),
        };
        store.insert_run(&run).await?;
        tracing::info!(run_id = %run_id, trigger = run.trigger.as_str(), by = %run.requested_by, "backup started");

        let mut timings = RunTimings {
            start: started.elapsed(),
            ..Default::default()
        };
        let settings = self.inner.settings.clone();
        let sealer = self.inner.sealer.clone();
        let manifests = self.inner.manifests.clone();
        let told = self.inner.told.clone();
        let actor = params.actor.clone();
        // A rollback's own commits leave housekeeping to the next backup: it would only
        // delay putting the last good configuration back.
        let maintain = params.trigger != Trigger::Rollback;
        let audit_chain = store.audit_chain_head().await?;
        let git_phase = blocking(move || {
            let ctx = RunContext {
                sealer: &sealer,
                manifests: &manifests,
                told: &told,
                run_id,
                actor: &actor,
                date: started_at.format("%Y-%m-%d").to_string(),
                title: &title,
                audit_chain,
            };
            git_phase(&settings, &ctx, &specs, maintain)
        })
        .await?;

        let mut maintenance = Vec::new();
        let (domains, push, error) = match git_phase {
            Ok(g) => {
                maintenance = g.maintenance;
                (timings.sync, timings.domains, timings.push) = g.times;
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
        let audit_started = Instant::now();
        let recorded = self
            .record_unrecorded_commits()
            .instrument(tracing::info_span!("audit"))
            .await;
        timings.audit = audit_started.elapsed();
        let finish_started = Instant::now();

        if let Ok(mut counts) = self.inner.security_warnings.lock() {
            for d in &domains {
                if let (Some(domain), n @ 1..) = (d.domain, d.security_warnings.len()) {
                    *counts.entry(domain).or_default() += n as u64;
                }
            }
        }
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
        let domain_errors: Vec<(Domain, String)> = domains
            .iter()
            .filter_map(|d| Some((d.domain?, d.error.clone()?)))
            .collect();
        if !domain_errors.is_empty()
            && let Err(e) = store.record_domain_errors(run_id, &domain_errors).await
        {
            tracing::warn!(error = %e, "could not record the domains' errors for Status");
        }
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
        timings.finish = finish_started.elapsed();
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
        tracing::debug!(run_id = %run_id, ?timings, "backup phases");
        Ok(BackupReport {
            run,
            domains,
            push,
            timings,
        })
    }
}

struct GitPhase {
    domains: Vec<DomainReport>,
    /// Time spent opening the working copy and bringing in the remote, committing the
    /// domains, pushing.
    times: (std::time::Duration, std::time::Duration, std::time::Duration),
    push: PushReport,
    /// Commits rebased onto the remote: (old, new, new parent).
    rewritten: Rewritten,
    /// Repositories to `git gc --auto` once the run is recorded.
    maintenance: Vec<std::path::PathBuf>,
}

/// The blocking part of a run: every domain's commit, then the push.
fn git_phase(
    settings: &Settings,
    ctx: &RunContext<'_>,
    specs: &[DomainSpec],
    maintain: bool,
) -> Result<GitPhase, EngineError> {
    let run_id = ctx.run_id;
    let t0 = Instant::now();
    let sync_span = tracing::info_span!("sync").entered();
    let wc = WorkingCopy::open(&settings.git)?;
    for lock in wc.recover_stale_locks() {
        tracing::warn!(lock = %lock.display(), "removed a stale git lock left by a stopped process");
    }
    wc.reset_opened_to_head()?;
    // Commit on top of what the remote has, so each domain is compared with the tree
    // everyone sees (a hand edit on the remote is replaced by the live file).
    let mut rewritten = Rewritten::new();
    match wc.sync() {
        Ok(r) => rewritten.extend(r.rewritten),
        Err(e) => {
            tracing::warn!(error = %e, "could not bring in the remote's commits before committing; the push will retry")
        }
    }
    drop(sync_span);
    let t1 = Instant::now();
    let mut claimed: BTreeMap<RepoPath, Domain> = BTreeMap::new();
    let mut domains = Vec::new();
    // Every domain's globs are walked at once (the walk only reads the file system; the
    // claims between domains are settled in order below).
    let scans: Vec<std::io::Result<sources::Scan>> = std::thread::scope(|s| {
        let walks: Vec<_> = specs
            .iter()
            .map(|spec| s.spawn(|| sources::scan(&settings.source_root, &spec.patterns)))
            .collect();
        walks
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("the scan thread panicked")))
            })
            .collect()
    });
    for (spec, scan) in specs.iter().zip(scans) {
        let _span = tracing::info_span!("domain", domain = %spec.domain).entered();
        let began = Instant::now();
        let mut report = match backup_domain(&wc, settings, spec, scan, &mut claimed, ctx) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(run_id = %run_id, domain = %spec.domain, error = %e, "domain backup failed");
                let _ = wc.reset_to_head();
                if let Err(e) = wc.restore_work_tree() {
                    tracing::warn!(error = %e, "could not restore the work tree after the failed domain; the next run tries again");
                }
                DomainReport {
                    domain: Some(spec.domain),
                    error: Some(e.to_string()),
                    ..Default::default()
                }
            }
        };
        report.duration = began.elapsed();
        domains.push(report);
    }
    if domains.iter().all(|d| d.error.is_none()) {
        wc.mark_clean();
    }
    let t2 = Instant::now();
    let (push, pushed_rewrites) = tracing::info_span!("push").in_scope(|| push(&wc));
    rewritten.extend(pushed_rewrites);
    let times = (t1 - t0, t2 - t1, t2.elapsed());
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
        times,
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

/// What every domain commit of one run shares.
struct RunContext<'a> {
    sealer: &'a Sealer,
    manifests: &'a repo::ManifestCache,
    told: &'a std::sync::Mutex<std::collections::HashMap<git2::Oid, repo::Summaries>>,
    run_id: Uuid,
    actor: &'a Actor,
    date: String,
    title: &'a CommitTitle,
    /// The audit chain's head when the run started, named in each commit's trailer.
    audit_chain: Option<String>,
}

fn backup_domain(
    wc: &WorkingCopy,
    settings: &Settings,
    spec: &DomainSpec,
    scan: std::io::Result<sources::Scan>,
    claimed: &mut BTreeMap<RepoPath, Domain>,
    ctx: &RunContext<'_>,
) -> Result<DomainReport, EngineError> {
    let (run_id, actor, date, title) = (ctx.run_id, ctx.actor, ctx.date.as_str(), ctx.title);
    let domain = spec.domain;
    let head = wc.head()?;
    // The previous manifest: as this process committed it when HEAD still holds those
    // blobs, else read from HEAD's tree.
    let head_tree = wc.head_tree()?;
    let head_blobs = head_tree
        .as_ref()
        .map(|t| repo::manifest_blob_ids(t, domain))
        .unwrap_or_default();
    let cached = ctx.manifests.get(domain, head_blobs);
    let old: std::sync::Arc<Manifest> = match &cached {
        Some(m) => m.clone(),
        None => std::sync::Arc::new(wc.manifest_at(head, domain)?),
    };
    let mut head_files = head_tree.map(|t| repo::TreeFiles::new(wc.repository(), t));
    // The stat cache: files untouched since they were last hashed are not read, unless a
    // full re-hash is due.
    let cache_file = statcache::path(wc.repository().path(), domain);
    let now = Utc::now();
    let now_unix = now.timestamp();
    let now_ns = i128::from(now.timestamp_nanos_opt().unwrap_or(i64::MAX));
    let previous = StatCache::load(&cache_file);
    let interval = i64::try_from(settings.full_rehash_interval.as_secs()).unwrap_or(i64::MAX);
    // Entries made under another secrets key or other rules vouch for another sealed form:
    // every file is read and sealed again (a key rotation's re-seal commit).
    let sealing = ctx.sealer.fingerprint(domain);
    let full_rehash =
        interval == 0 || now_unix.saturating_sub(previous.full_rehash_at) >= interval || previous.sealing != sealing;
    let mut cache = StatCache::new(if full_rehash { now_unix } else { previous.full_rehash_at }, &sealing);
    let mut old = old;
    let scan = scan.map_err(|e| EngineError::Internal(format!("reading {}: {e}", settings.source_root.display())))?;
    let mut warnings = scan.warnings.clone();
    let mut security = Vec::new();
    let mut told_here: repo::Summaries = BTreeMap::new();
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
        let mode = file.git_mode();
        let tree_blob = head_files.as_mut().and_then(|f| f.get(&file.path)).map(|(id, _)| id);
        if !full_rehash
            && let Some(hit) = previous.fresh(&file.path, &file.stat)
            && let Some(committed) = old.get(&file.path)
            && committed.sha256 == hit.sha256
            && committed.mode == mode
            && tree_blob == Some(hit.blob)
        {
            // Untouched since it was hashed, and the branch still holds that content; the
            // metadata is this run's (the scan's lstat).
            new.insert(
                file.path.clone(),
                ManifestEntry {
                    meta: Some(file.meta.clone()),
                    ..committed.clone()
                },
            );
            cache.record(file.path.clone(), hit.clone(), now_ns);
            continue;
        }
        pending.push(Pending {
            file,
            mode,
            committed: old.get(&file.path).cloned(),
            tree_blob,
            // Trusted for content only: made under this sealing (key and rules).
            known: (previous.sealing == sealing)
                .then(|| previous.known(&file.path).cloned())
                .flatten(),
        });
    }
    // On every core: read, hash, and write what changed into the work tree and the objects.
    let seal = SealContext {
        sealer: ctx.sealer,
        domain,
    };
    let results = hash_and_stage(wc, seal, &pending)?;
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
                    if let Some(o) = std::sync::Arc::make_mut(&mut old).get_mut(path) {
                        o.sha256 = tree_sha;
                    }
                }
                if let Some(staged) = h.staged {
                    contents.insert(path.clone(), staged);
                }
                if let Some(summary) = h.summary {
                    told_here.insert(path.clone(), summary);
                }
                let before = old.get(path).and_then(|o| o.meta.as_ref());
                if h.secret
                    && let Some(before) = before.filter(|b| crate::metadata::widens_access(Some(b), &p.file.meta))
                {
                    let words = crate::metadata::describe(before, &p.file.meta).join(", ");
                    let warning = format!(
                        "SECURITY: {path} holds secrets and is now open to group or others ({words}, {}:{})",
                        p.file.meta.owner, p.file.meta.group
                    );
                    tracing::warn!(run_id = %run_id, domain = %domain, file = %path, change = %words, "a file holding secrets was opened to group or others");
                    security.push(warning);
                }
                let entry = statcache::Entry {
                    stat: h.stat,
                    sha256: h.sha256.clone(),
                    blob: h.blob,
                    clear: h.clear,
                    secret: h.secret,
                };
                cache.record(path.clone(), entry, now_ns);
                new.insert(
                    path.clone(),
                    ManifestEntry {
                        sha256: h.sha256,
                        mode: p.mode,
                        meta: Some(p.file.meta.clone()),
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
    for (path, entry) in old.iter() {
        if !new.contains_key(path) && !claimed.contains_key(path) && scan.may_have_missed(path) {
            warnings.push(format!(
                "{path}: not found in an unreadable directory; the backed-up version is kept"
            ));
            new.insert(path.clone(), entry.clone());
        }
    }
    let mut records = repo::compare(&old, &new);
    // Each changed file in its service's terms, from the stored forms: the branch's blob
    // before, the staged (or, for a change of mode alone, the same) blob after.
    let blobs: BTreeMap<RepoPath, (Option<git2::Oid>, Option<git2::Oid>)> = records
        .iter()
        .filter(|r| r.kind != ChangeKind::Unchanged)
        .map(|r| {
            let before = head_files.as_mut().and_then(|f| f.get(&r.path)).map(|(id, _)| id);
            let after = contents.get(&r.path).map(|s| s.id).or(before);
            (r.path.clone(), (before, after))
        })
        .collect();
    repo::summarize_changes(
        wc.repository(),
        domain,
        &mut records,
        |p| blobs.get(p).and_then(|b| b.0),
        |p| blobs.get(p).and_then(|b| b.1),
        |p| told_here.get(p).cloned(),
    );
    let deleted: Vec<RepoPath> = records
        .iter()
        .filter(|r| r.kind == ChangeKind::Deleted)
        .map(|r| r.path.clone())
        .collect();
    let message = commit_message(
        date,
        domain,
        &records,
        title,
        &Trailers {
            run_id,
            actor,
            sealed_with: ctx.sealer.keys().sealing().id(),
            audit_chain: ctx.audit_chain.as_deref(),
        },
    );
    let same_as_parent = cached.is_some() && *old == new;
    let commit = wc.commit_domain(domain, &new, &contents, &deleted, &message, same_as_parent)?;
    let committed = wc
        .repository()
        .find_commit(commit)
        .and_then(|c| c.tree())
        .map(|t| repo::manifest_blob_ids(&t, domain))
        .unwrap_or_default();
    ctx.manifests.put(domain, committed, std::sync::Arc::new(new));
    if let Ok(mut told) = ctx.told.lock() {
        // Bounded: commits a recording never took (a stopped run) are read again then.
        if told.len() > 64 {
            told.clear();
        }
        let summaries: repo::Summaries = records
            .iter()
            .filter(|r| r.kind != ChangeKind::Unchanged)
            .map(|r| (r.path.clone(), r.summary.clone()))
            .collect();
        told.insert(commit, summaries);
    }
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
        security_warnings: security,
        error: None,
        duration: Default::default(),
    })
}
