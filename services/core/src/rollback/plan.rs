//! A rollback's plan: the target files read from the repository (unsealed), each live
//! file compared with its target, and the diffs a reader may see (secrets redacted).

use super::files::{live_path, read_live};
use super::*;
use crate::secrets::{self, Sealer};
use crate::statcache::Digest256;
use sha2::Digest;

pub(super) const PATCH_CAP: usize = 64 * 1024;

pub(super) fn patch(path: &str, old: &[u8], new: &[u8]) -> String {
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

/// The original bytes of a target file: its blob must be what the commit's manifest
/// says (the SHA-256 of the stored, sealed form: a keyed fingerprint), and every sealed
/// value must open (authenticated): what is written back is byte for byte what was
/// backed up.
fn target_content(
    sealer: &Sealer,
    domain: Domain,
    path: &RepoPath,
    entry: &repo::ManifestEntry,
    stored: &[u8],
) -> Result<Vec<u8>, EngineError> {
    use sha2::Digest;
    if hex::encode(sha2::Sha256::digest(stored)) != entry.sha256 {
        return Err(EngineError::Internal(format!(
            "{path}: the repository's content does not match the {domain} manifest of the target commit; \
             the backup repository was altered: nothing was changed"
        )));
    }
    if entry.mode == crate::metadata::GIT_SYMLINK {
        return Ok(stored.to_vec());
    }
    sealer
        .unseal(path.as_str(), stored)
        .map(|c| c.into_owned())
        .map_err(|e| EngineError::Internal(format!("{e}; nothing was changed")))
}

/// The diff from a live file to its target as a reader may see it: both sides sealed
/// with today's key and rules, then every sealed value redacted.
fn redacted_patch(sealer: &Sealer, domain: Domain, path: &RepoPath, live: &[u8], target: &[u8]) -> String {
    redacted_patch_of_sealed(
        sealer,
        path,
        &sealer.seal(Some(domain), path.as_str(), live),
        &sealer.seal(Some(domain), path.as_str(), target),
    )
}

/// [`redacted_patch`] of both sides already sealed.
fn redacted_patch_of_sealed(sealer: &Sealer, path: &RepoPath, live_s: &[u8], target_s: &[u8]) -> String {
    if secrets::is_sealed_file(live_s) || secrets::is_sealed_file(target_s) {
        return format!("Sealed file {path} differs (its content is a secret)\n");
    }
    let text = patch(path.as_str(), live_s, target_s);
    sealer.redact_patch(path.as_str(), live_s, target_s, &text)
}

/// A target file read and compared with its live version, on a worker thread.
struct TargetRead {
    /// Its live version, if any.
    current: Option<super::files::Live>,
    /// Its target content, unsealed.
    content: Vec<u8>,
    /// The secret values of both (scrubbed from anything the task says).
    secrets: Vec<String>,
    action: PlanAction,
    /// For a file to write: its redacted diff and its change in the service's terms.
    patch: String,
    summary: String,
    /// For a file changed in place: the live stored (sealed) form's blob id, the target
    /// one's SHA-256 and the change between them, for the recording run.
    told: Option<(Oid, Digest256, crate::summary::Summary)>,
}

impl TargetRead {
    /// Compares the two versions and, for a file to write, makes its diff and summary.
    fn plan(
        sealer: &Sealer,
        domain: Domain,
        path: &RepoPath,
        entry: &repo::ManifestEntry,
        current: Option<super::files::Live>,
        content: Vec<u8>,
    ) -> TargetRead {
        let link = entry.mode == crate::metadata::GIT_SYMLINK;
        let mut secrets = Vec::new();
        if !link {
            secrets.extend(sealer.secret_values(domain, path.as_str(), &content));
        }
        if let Some(l) = current.as_ref().filter(|l| l.mode != crate::metadata::GIT_SYMLINK) {
            secrets.extend(sealer.secret_values(domain, path.as_str(), &l.content));
        }
        let action = match &current {
            Some(l) if l.is(&content, entry.mode, entry.meta.as_ref()) => PlanAction::Unchanged,
            _ => PlanAction::Write,
        };
        let (patch, summary, told) = if action == PlanAction::Write && !link {
            let old = current.as_ref().map(|l| l.content.as_slice()).unwrap_or(&[]);
            let (live_s, target_s) = (
                sealer.seal(Some(domain), path.as_str(), old),
                sealer.seal(Some(domain), path.as_str(), &content),
            );
            let before = current.as_ref().map(|_| live_s.as_ref());
            let s = crate::summary::summarize(domain, path.as_str(), before, Some(&target_s));
            let told = current.as_ref().and_then(|_| {
                let blob = Oid::hash_object(git2::ObjectType::Blob, &live_s).ok()?;
                Some((blob, sha2::Sha256::digest(&target_s).into(), s.clone()))
            });
            (
                redacted_patch_of_sealed(sealer, path, &live_s, &target_s),
                s.summary,
                told,
            )
        } else {
            (String::new(), String::new(), None)
        };
        TargetRead {
            current,
            content,
            secrets,
            action,
            patch,
            summary,
            told,
        }
    }
}

/// Files of the target read at a time by [`read_targets`].
const PLAN_CHUNK: usize = 256;

/// Each entry's live version and its target content (checked against the manifest and
/// unsealed), read and compared on every core: each worker opens its own repository handle.
fn read_targets(
    settings: &Settings,
    sealer: &Sealer,
    git_dir: &Path,
    target: Oid,
    domain: Domain,
    entries: &[(&RepoPath, &repo::ManifestEntry)],
) -> Result<Vec<TargetRead>, EngineError> {
    let internal = |e: git2::Error| EngineError::Internal(e.to_string());
    crate::parallel::in_order(
        entries,
        crate::parallel::threads_for(entries.len(), 32),
        |next| {
            let repo = git2::Repository::open(git_dir).map_err(internal)?;
            let tree = repo.find_commit(target).and_then(|c| c.tree()).map_err(internal)?;
            let names = crate::metadata::Names::load();
            let mut out = Vec::new();
            while let Some((i, (path, entry))) = next() {
                let blob = tree
                    .get_path(Path::new(path.as_str()))
                    .and_then(|e| repo.find_blob(e.id()))
                    .map_err(|e| EngineError::Internal(format!("{path} at {target}: {e}")))?;
                let live = live_path(&settings.source_root, path, entry.meta.is_none()).map_err(|m| {
                    EngineError::InvalidArgument {
                        field: "commit",
                        message: m,
                    }
                })?;
                let current = read_live(&live, &names);
                let content = target_content(sealer, domain, path, entry, blob.content())?;
                out.push((i, TargetRead::plan(sealer, domain, path, entry, current, content)));
            }
            Ok(out)
        },
        || EngineError::Internal("a thread reading the rollback's files panicked".to_owned()),
    )
}

/// Resolves the target, reads its files and plans (blocking).
pub(super) fn prepare(
    settings: &Settings,
    sealer: &Sealer,
    commit: &CommitPrefix,
    choice: &DomainChoice,
    remove_extra: bool,
    unsigned: Option<&str>,
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
                .commit_info(target, None)
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
    let mut files = Vec::new();
    let mut plan = Plan::default();
    // With a signing key, only this server's signed commits are applied, unless an admin
    // overrides it for this rollback, with a reason (`unsigned`), which the task records.
    if let Some(Err(why)) = wc.verify_commit(target).map_err(EngineError::from)? {
        match unsigned {
            None => {
                return Err(EngineError::FailedPrecondition(format!(
                    "commit {target}: {why}; a rollback applies only commits signed by this server's key \
                     (CONFIG_BACKUP_SIGNING_KEY): nothing was changed. An admin may override with \
                     allow_unsigned and a reason"
                )));
            }
            Some(reason) => {
                tracing::warn!(commit = %target, why = %why, reason, "rolling back to a commit whose signature does not verify, on an admin's override");
                plan.warnings.push(format!(
                    "commit {target}: {why}; applied on the admin's explicit allow_unsigned: {reason}"
                ));
            }
        }
    }
    let names = crate::metadata::Names::load();
    let privilege = crate::metadata::Privilege::current();
    // Files whose owner or group this server cannot set: the rollback is refused whole.
    let mut unownable = Vec::new();
    let mut removals = Vec::new();
    let mut secrets = Vec::new();
    let mut summaries = crate::summary::KnownSummaries::default();
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
        let entries: Vec<(&RepoPath, &repo::ManifestEntry)> = manifest.iter().collect();
        // The target's files and the live ones are read on every core, a chunk at a time
        // (memory holds one chunk's live files), then planned in order.
        for chunk in entries.chunks(PLAN_CHUNK) {
            let read = read_targets(settings, sealer, repo.path(), target, *d, chunk)?;
            for ((path, entry), read) in chunk.iter().copied().zip(read) {
                let link = entry.mode == crate::metadata::GIT_SYMLINK;
                let TargetRead {
                    current,
                    content,
                    secrets: found,
                    action,
                    patch: p,
                    summary,
                    told,
                } = read;
                secrets.extend(found);
                if let Some((old, new, s)) = told {
                    summaries.insert(path.as_str(), old, new, s);
                }
                let metadata_changes = match (&current, &entry.meta) {
                    (Some(l), Some(m)) if action == PlanAction::Write => {
                        let mut words = crate::metadata::describe(&l.meta, m);
                        if link && l.content != content {
                            words.push(crate::metadata::describe_link(&String::from_utf8_lossy(&content)));
                        }
                        words
                    }
                    _ => Vec::new(),
                };
                if action == PlanAction::Write
                    && let Some(m) = &entry.meta
                    && !privilege.can_own(m.uid, m.gid)
                {
                    unownable.push(format!("{path} ({}:{})", m.owner, m.group));
                }
                plan.files.push(PlannedFile {
                    domain: *d,
                    path: path.clone(),
                    action,
                    mode: entry.mode,
                    patch: p,
                    metadata_changes,
                    summary,
                });
                files.push(TargetFile {
                    domain: *d,
                    path: path.clone(),
                    content,
                    mode: entry.mode,
                    meta: entry.meta.clone(),
                });
            }
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
                let current = read_live(&f.abs, &names);
                let old = current.as_ref().map(|l| l.content.as_slice()).unwrap_or(&[]);
                plan.files.push(PlannedFile {
                    domain: *d,
                    path: f.path.clone(),
                    action: PlanAction::Remove,
                    mode: current.as_ref().map(|l| l.mode).unwrap_or(0o100644),
                    patch: redacted_patch(sealer, *d, &f.path, old, &[]),
                    metadata_changes: Vec::new(),
                    summary: "file removed".to_owned(),
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
    if !unownable.is_empty() {
        let n = unownable.len();
        let shown: Vec<&str> = unownable.iter().take(10).map(String::as_str).collect();
        return Err(EngineError::FailedPrecondition(format!(
            "the server cannot give {n} file(s) their owner or group (it runs as uid {} without CAP_CHOWN): {}{}; \
             nothing was changed: run the server as root or grant it CAP_CHOWN and CAP_FOWNER",
            privilege.euid,
            shown.join(", "),
            if n > shown.len() { ", ..." } else { "" }
        )));
    }
    Ok(Prepared {
        target,
        domains,
        files,
        removals,
        plan,
        secrets,
        summaries: std::sync::Arc::new(summaries),
    })
}
