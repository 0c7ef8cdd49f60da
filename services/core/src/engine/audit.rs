//! Audit records: the rows of each backup commit, the recovery of commits a stopped run
//! left unrecorded, and retention.

use super::*;

const RECOVERY_LIMIT: usize = 1000;

/// Commits read and recorded at a time on the changed-files path.
const FOLLOW_BATCH: usize = 256;

/// Audit rows read from the repository before they are inserted.
const AUDIT_BATCH_ROWS: usize = 8192;

impl Engine {
    /// Checks this site's audit hash chain against the audit rows as stored: each problem
    /// names the link, the commit and what differs (an edited or deleted row, a removed
    /// link).
    /// Then each commit row is read against the backup repository: it must be there with
    /// the subject the trail stored, and the chain head its message names
    /// (`Config-Backup-Audit-Chain`, written when its run started) must be a link before
    /// the commit's own: a chain recomputed in the database after an edit, or deleted,
    /// no longer matches what git (signed, pushed) holds.
    pub async fn verify_audit_chain(&self) -> Result<crate::store::ChainReport, EngineError> {
        let mut report = self.inner.store.verify_audit_chain(self.signer()).await?;
        let git = self.inner.settings.git.clone();
        let check = report.clone();
        let found = blocking(move || -> Result<Vec<String>, EngineError> {
            let Some(wc) = WorkingCopy::open_existing(&git)? else {
                return Ok(Vec::new());
            };
            Ok(anchor_problems(wc.repository(), &check))
        })
        .await??;
        report.problems.extend(found);
        Ok(report)
    }

    /// Inserts audit rows for commits on the branch that the audit trail lacks. `opened`
    /// is the run's own working copy, when it has one: reading the commits back takes no
    /// second open (its config, refs and signing key read again).
    pub(super) async fn record_unrecorded_commits(&self, opened: Option<WorkingCopy>) -> Result<usize, EngineError> {
        let git = self.inner.settings.git.clone();
        // The walk stops at the newest commit on record (normally this run's parent):
        // a run walks its own commits, not the branch's history.
        let newest = self.inner.store.newest_commit().await?;
        let (wc, candidates) = blocking(move || -> Result<(WorkingCopy, Vec<git2::Oid>), EngineError> {
            let wc = match opened {
                Some(wc) => wc,
                None => WorkingCopy::open(&git)?,
            };
            let newest = newest.and_then(|h| git2::Oid::from_str(&h).ok());
            let candidates = wc.unrecorded_commits(|id| Some(id) == newest, RECOVERY_LIMIT)?;
            Ok((wc, candidates))
        })
        .await??;
        // Newest first: every commit up to the first one on record, asked in one query.
        let hashes: Vec<String> = candidates.iter().map(|id| id.to_string()).collect();
        let recorded = match hashes.is_empty() {
            true => Default::default(),
            false => self.inner.store.recorded_commits(&hashes).await?,
        };
        let missing: Vec<git2::Oid> = candidates
            .into_iter()
            .zip(&hashes)
            .take_while(|(_, hash)| !recorded.contains(*hash))
            .map(|(id, _)| id)
            .collect();
        if missing.is_empty() {
            return Ok(0);
        }
        // Oldest first. Commits that follow the trail (the usual case: this run's) are
        // recorded from their changed files alone, read without parsing an unchanged
        // manifest; a batch at a time, of at most FOLLOW_BATCH commits and, past the first
        // commit, about AUDIT_BATCH_ROWS rows (a first backup's commits hold every file: at
        // L, a batch of all four was the run's peak of memory).
        let mut queue: std::collections::VecDeque<git2::Oid> = missing.into_iter().rev().collect();
        let mut recorded = 0;
        let mut wc = Some(wc);
        while !queue.is_empty() {
            let git = self.inner.settings.git.clone();
            let batch: Vec<git2::Oid> = queue.iter().take(FOLLOW_BATCH).copied().collect();
            let told = self.inner.told.clone();
            let opened = wc.take();
            let (back, commits, foreign) = blocking(move || -> Result<_, EngineError> {
                let wc = match opened {
                    Some(wc) => wc,
                    None => WorkingCopy::open(&git)?,
                };
                let (mut out, mut rows, mut foreign) = (Vec::new(), 0, false);
                for id in batch {
                    if rows >= AUDIT_BATCH_ROWS {
                        break;
                    }
                    let known = told.lock().ok().and_then(|mut t| t.remove(&id));
                    match wc.commit_changes(id, known.as_ref())? {
                        Some(info) => {
                            let commit = audit_commit(&info);
                            rows += commit.files.len();
                            out.push(commit);
                        }
                        None => {
                            foreign = true;
                            break;
                        }
                    }
                }
                Ok((wc, out, foreign))
            })
            .await??;
            wc = Some(back);
            let n = self.inner.store.record_following(&commits).await?;
            queue.drain(..n);
            recorded += n;
            if foreign || n < commits.len() || commits.is_empty() {
                break;
            }
        }
        drop(wc);
        // The rest (after a gap, a foreign commit, retention): every file, in batches of
        // about AUDIT_BATCH_ROWS rows: memory stays bounded on a large site, and a stop
        // between batches leaves the newest commits unrecorded, which is what the walk
        // above finds again.
        while !queue.is_empty() {
            let git = self.inner.settings.git.clone();
            let (commits, rest) = blocking(move || -> Result<_, EngineError> {
                let wc = WorkingCopy::open(&git)?;
                let (mut rows, mut commits) = (0, Vec::new());
                while rows < AUDIT_BATCH_ROWS
                    && let Some(id) = queue.pop_front()
                {
                    if let Some(info) = wc.commit_info(id, None)? {
                        rows += info.files.len();
                        commits.push(audit_commit(&info));
                    }
                }
                Ok((commits, queue))
            })
            .await??;
            self.inner.store.record_full(&commits).await?;
            recorded += commits.len();
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
        Ok(self.inner.store.delete_audit_rows_before(cutoff, self.signer()).await?)
    }
}

/// Each commit row of `report` read against `repo`: it must be there with the subject the
/// trail stored, and the chain head its message names (`Config-Backup-Audit-Chain`) must
/// be a link before the commit's own. Each problem starts with `commit <hash>`.
pub(crate) fn anchor_problems(repo: &git2::Repository, report: &crate::store::ChainReport) -> Vec<String> {
    let pruned = report.checkpoint.is_some();
    let at: std::collections::HashMap<&str, i64> = report.hashes.iter().map(|(p, h)| (h.as_str(), *p)).collect();
    let mut problems = Vec::new();
    for c in &report.commits {
        let Some(commit) = git2::Oid::from_str(&c.hash)
            .ok()
            .and_then(|id| repo.find_commit(id).ok())
        else {
            problems.push(format!(
                "commit {}: in the audit trail but not in the backup repository",
                c.hash
            ));
            continue;
        };
        let message = commit.message().unwrap_or_default();
        if message.lines().next().unwrap_or_default() != c.subject {
            problems.push(format!(
                "commit {}: its subject in the audit trail differs from the commit in the repository",
                c.hash
            ));
        }
        let Some(anchor) = repo::trailer(message, crate::store::TRAILER_AUDIT_CHAIN) else {
            continue;
        };
        match (c.position, at.get(anchor)) {
            (None, _) => problems.push(format!(
                "commit {}: recorded while the chain existed, but no link covers it (its link was deleted)",
                c.hash
            )),
            (Some(own), Some(named)) if *named < own => {}
            (Some(_), None) if pruned => {}
            (Some(own), _) => problems.push(format!(
                "commit {} (link {own}): its message names the chain head {anchor}, which is not a link \
                 before it: the chain was rewritten",
                c.hash
            )),
        }
    }
    problems
}

/// A commit as the audit trail records it, with a row per file `info` lists (every
/// file from `commit_info`, the changed ones from `commit_changes`).
pub fn audit_commit(info: &CommitInfo) -> AuditCommit {
    let rows = audit_rows(info);
    AuditCommit {
        run_id: info.run_id,
        backup_date: info.time.date_naive(),
        domain: info.domain,
        commit_hash: info.id.to_string(),
        commit_message: info.message.lines().next().unwrap_or_default().to_owned(),
        previous_hash: info.parent.map(|p| p.to_string()),
        backed_up_at: info.time,
        backed_up_by: repo::trailer(&info.message, repo::TRAILER_BY)
            .unwrap_or("system")
            .to_owned(),
        manifest: info.manifest.map(|m| m.to_string()),
        parent_manifest: info.parent_manifest.map(|m| m.to_string()),
        files: rows,
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
            file_meta: f.new.as_ref().and_then(|e| e.meta.as_ref()).map(|m| m.record()),
            previous_file_meta: f.old.as_ref().and_then(|e| e.meta.as_ref()).map(|m| m.record()),
            change_summary: (!f.summary.summary.is_empty()).then(|| f.summary.summary.clone()),
            change_detail: (!f.summary.changes.is_empty()).then(|| f.summary.encode_changes()),
            backed_up_at: info.time,
            backed_up_by: by.clone(),
        })
        .collect()
}
