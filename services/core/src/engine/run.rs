//! A run: every domain scanned at once, prepared in order, its files read, sealed,
//! hashed and staged in one pool for the whole run, committed in order; then push and
//! record. The blocking part runs on the blocking pool.

use super::domains::{self, RunContext};
use super::hashing::hash_and_stage;
use super::*;
use std::time::Duration;
use tracing::Instrument;

impl Engine {
    /// A new run's record, not started yet.
    pub(super) fn new_run(&self, params: &BackupParams) -> RunRecord {
        RunRecord {
            id: Uuid::new_v4(),
            trigger: params.trigger,
            requested_by: params.actor.as_audit().to_owned(),
            host: self.inner.host.clone(),
            started_at: Utc::now(),
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
        }
    }

    /// A run under the engine lock, `held` by its caller or by the run itself (then its
    /// row is written already, and the lock is released in the transaction that records
    /// its end).
    pub(crate) async fn backup_inner(
        &self,
        params: BackupParams,
        specs: Vec<DomainSpec>,
        title: CommitTitle,
        held: Held<'_>,
    ) -> Result<BackupReport, EngineError> {
        let store = &self.inner.store;
        let (mut run, started, interrupted, release) = match held {
            Held::ByRun(s) => {
                let s = *s;
                (s.run, s.at, s.interrupted, Some(s.lock))
            }
            Held::ByCaller => {
                let started = Instant::now();
                let run = self.new_run(&params);
                let interrupted = store.start_run(&run, None).await?.unwrap_or_default();
                (run, started, interrupted, None)
            }
        };
        let (run_id, started_at) = (run.id, run.started_at);
        if !interrupted.is_empty() {
            tracing::warn!(runs = ?interrupted, "runs interrupted by a stop were marked; their commits are recovered now");
        }
        tracing::info!(run_id = %run_id, trigger = run.trigger.as_str(), by = %run.requested_by, "backup started");

        let mut timings = RunTimings {
            start: started.elapsed(),
            ..Default::default()
        };
        let settings = self.inner.settings.clone();
        let sealer = self.inner.sealer.clone();
        let manifests = self.inner.manifests.clone();
        let stat_caches = self.inner.stat_caches.clone();
        let told = self.inner.told.clone();
        let summaries = params.summaries.clone();
        let actor = params.actor.clone();
        // A rollback's own commits leave housekeeping to the next backup: it would only
        // delay putting the last good configuration back.
        let maintain = params.trigger != Trigger::Rollback;
        let audit_chain = store.audit_chain_head().await?;
        let git_phase = blocking(move || {
            let ctx = RunContext {
                sealer: &sealer,
                manifests: &manifests,
                stat_caches: &stat_caches,
                told: &told,
                summaries: &summaries,
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
        let mut opened = None;
        let (domains, push, error) = match git_phase {
            Ok(g) => {
                maintenance = g.maintenance;
                opened = g.wc;
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
            .record_unrecorded_commits(opened)
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
        // Retention under the lock, before the end is on record.
        if let Err(e) = self.apply_retention().await {
            tracing::warn!(error = %e, "retention of audit rows failed; it is tried again after the next run");
        }
        run.finished_at = Some(Utc::now());
        match release {
            Some(lock) => {
                // The end on record and the lock released in one transaction: whoever
                // sees the run's end can start the next one at once.
                store.finish_run(&run, Some(lock.id())).await?;
                lock.released_with_record();
            }
            None => store.update_run(&run).await?,
        }
        // Housekeeping once the run is on record, on its own thread: a repack can take
        // longer than the backup it follows.
        self.inner.maintenance.request(maintenance);
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
    /// Repositories to keep compact once the run is recorded ([`crate::maintenance`]).
    maintenance: Vec<std::path::PathBuf>,
    /// The working copy, open, for the audit trail to read the run's commits back; none
    /// after a run that read many files, whose caches (objects, mapped packs) are let
    /// go before the audit trail's batches add their own.
    wc: Option<WorkingCopy>,
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
    // Every domain's globs are walked, each with its stat cache loaded beside it (the walk
    // only reads the file system; the claims between domains are settled in order below):
    // on a thread each, at once, unless the caches this process kept say the site is
    // small. A thread's start and end cost more than a walk of a few dozen files (with
    // mimalloc, its heap handed back at its end signals the other cores).
    let git_dir = wc.repository().path().to_path_buf();
    let scan = |spec: &DomainSpec| {
        (
            sources::scan(&settings.source_root, &spec.patterns),
            ctx.stat_caches
                .take_or_load(spec.domain, &statcache::path(&git_dir, spec.domain)),
        )
    };
    let small = ctx
        .stat_caches
        .kept_files(specs.iter().map(|s| s.domain))
        .is_some_and(|files| files < SCAN_ON_THREADS_FROM);
    let scanned: Vec<(std::io::Result<sources::Scan>, StatCache)> = if small {
        specs.iter().map(scan).collect()
    } else {
        std::thread::scope(|s| {
            let walks: Vec<_> = specs.iter().map(|spec| s.spawn(move || scan(spec))).collect();
            walks
                .into_iter()
                .map(|w| {
                    w.join().unwrap_or_else(|_| {
                        (
                            Err(std::io::Error::other("the scan thread panicked")),
                            StatCache::default(),
                        )
                    })
                })
                .collect()
        })
    };
    let (scans, caches): (Vec<_>, Vec<_>) = scanned.into_iter().unzip();
    // In domain order: claims, and what each domain must read.
    let mut prepared = Vec::with_capacity(specs.len());
    for ((spec, scan), previous) in specs.iter().zip(&scans).zip(caches) {
        let _span = tracing::info_span!("domain", domain = %spec.domain).entered();
        prepared.push(match scan {
            Ok(scan) => domains::prepare(&wc, settings, spec, scan, previous, &mut claimed, ctx),
            Err(e) => Err(EngineError::Internal(format!(
                "reading {}: {e}",
                settings.source_root.display()
            ))),
        });
    }
    // Every domain's files in one pool.
    let pool_started = Instant::now();
    let all: Vec<&hashing::Pending<'_>> = prepared
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .flat_map(|p| p.pending.iter())
        .collect();
    let hashed = hash_and_stage(&wc, ctx.sealer, ctx.summaries, &all);
    let pool = pool_started.elapsed();
    let total_read = all.len().max(1) as u32;
    drop(all);
    let mut hashed = match hashed {
        Ok(h) => h.into_iter(),
        Err(e) => {
            // Only a panicking hashing thread: no domain can be committed.
            let _ = wc.reset_to_head();
            let _ = wc.restore_work_tree();
            return Err(e);
        }
    };
    // In domain order again: each domain's commit.
    let mut domains = Vec::with_capacity(specs.len());
    let mut failed = false;
    for (spec, prepared) in specs.iter().zip(prepared) {
        let _span = tracing::info_span!("domain", domain = %spec.domain).entered();
        let began = Instant::now();
        let (result, own) = match prepared {
            Ok(p) => {
                let (took, n) = (p.took, p.pending.len());
                let results: Vec<_> = hashed.by_ref().take(n).collect();
                // Its share of the pool, by the files it read.
                let share = pool * (n as u32) / total_read;
                (domains::finish(&wc, p, results.into_iter(), ctx), took + share)
            }
            Err(e) => (Err(e), Duration::ZERO),
        };
        let mut report = match result {
            Ok(r) => r,
            Err(e) => {
                failed = true;
                tracing::error!(run_id = %run_id, domain = %spec.domain, error = %e, "domain backup failed");
                let _ = wc.reset_to_head();
                DomainReport {
                    domain: Some(spec.domain),
                    error: Some(e.to_string()),
                    ..Default::default()
                }
            }
        };
        report.duration = own + began.elapsed();
        domains.push(report);
    }
    // The branch moves once, to the last domain's commit. Should that fail (a writer
    // moved it, the disk is full), this run's commits stay off the branch: each domain
    // that made one failed, and its live files are committed by the next run.
    if let Err(e) = wc.publish_commits() {
        tracing::error!(run_id = %run_id, error = %e, "could not move the branch to this run's commits");
        failed = true;
        for d in domains.iter_mut().filter(|d| d.error.is_none()) {
            d.error = Some(format!("moving the branch to this run's commits: {e}"));
            d.commit = None;
        }
        let _ = wc.reset_to_head();
    }
    // What the domains were read from is not needed past their commits (at L, tens of MB
    // held through the push otherwise).
    drop(hashed);
    drop(scans);
    // A run over many files leaves tens of MB free but resident; handed back before the
    // push and the audit trail's recording add their own.
    if total_read >= TRIM_AFTER_FILES {
        crate::parallel::release_free_memory();
    }
    // The work tree is a convenience copy: every domain's files were written into it
    // before the first commit, so after a failed domain it is put back to HEAD once, with
    // the later domains' commits in it.
    if (failed || moved_between_domains(&domains))
        && let Err(e) = wc.restore_work_tree()
    {
        tracing::warn!(error = %e, "could not restore the work tree after the failed domain; the next run tries again");
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
        wc: (total_read < TRIM_AFTER_FILES).then_some(wc),
    })
}

use repo::Rewrites as Rewritten;

/// Files in the kept stat caches from which a run walks its domains on a thread each.
const SCAN_ON_THREADS_FROM: usize = 256;

/// Files read in a run past which its free memory is handed back (a first backup, a full
/// re-hash of a large site); a run of a few changed files skips the heap walk.
const TRIM_AFTER_FILES: u32 = 4096;

/// Whether a path one domain deleted was written by another this run (a file that moved
/// between domains' patterns): the deleting commit removed the other's work-tree copy.
fn moved_between_domains(domains: &[DomainReport]) -> bool {
    let deleted: std::collections::HashSet<&RepoPath> = domains
        .iter()
        .flat_map(|d| d.changes.iter())
        .filter(|c| c.kind == ChangeKind::Deleted)
        .map(|c| &c.path)
        .collect();
    !deleted.is_empty()
        && domains
            .iter()
            .flat_map(|d| d.changes.iter())
            .any(|c| c.kind != ChangeKind::Deleted && deleted.contains(&c.path))
}

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
