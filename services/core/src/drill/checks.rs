//! A drill's checks against its fresh clone (blocking): the history (signatures, the
//! audit chain and its anchors), then each domain's files at the remote's head.

use std::collections::BTreeMap;
use std::path::Path;

use git2::{Oid, Repository};
use sha2::{Digest, Sha256};

use super::TrailView;
use crate::domain::Domain;
use crate::metadata::GIT_SYMLINK;
use crate::repo::{self, RepoError, WorkingCopy};
use crate::rollback::TargetFile;
use crate::secrets::Sealer;
use crate::settings::Settings;
use crate::store::ChainReport;

/// Commits walked at most when looking for where a file last changed.
const WALK_LIMIT: usize = 100_000;

/// What the history's check found.
#[derive(Debug)]
pub(super) struct HistoryFound {
    /// Each cause with the domain of the commit it names (`None`: every domain).
    pub causes: Vec<(Option<Domain>, String)>,
    /// What was checked, or not checked and why.
    pub notes: Vec<String>,
}

/// What a domain's check found.
#[derive(Debug)]
pub(super) struct DomainFound {
    /// The domain's newest commit on the remote.
    pub commit: Option<String>,
    /// Files checked.
    pub files: u64,
    /// What did not hold.
    pub causes: Vec<String>,
    /// The restored files (unsealed), for the validate command: when the domain has one
    /// and every file was restored.
    pub restored: Option<Vec<TargetFile>>,
}

fn short(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

/// The domain a commit's trailer names, if any.
fn domain_of(repo: &Repository, id: Oid) -> Option<Domain> {
    let commit = repo.find_commit(id).ok()?;
    repo::trailer(commit.message().unwrap_or_default(), repo::TRAILER_DOMAIN)?
        .parse()
        .ok()
}

/// The history's causes (signatures; the chain against the trail and the clone), each
/// with the domain of the commit it names (`None`: every domain), and notes of what was
/// not checked.
pub(super) fn history(
    settings: &Settings,
    dir: &Path,
    head: Oid,
    chain: &ChainReport,
) -> Result<HistoryFound, RepoError> {
    let wc = WorkingCopy::open_clone(&settings.git, dir)?;
    let repo = wc.repository();
    let mut causes = Vec::new();
    let mut notes = Vec::new();

    // The trail as stored, then each recorded commit against what the remote holds.
    for p in &chain.problems {
        causes.push((None, format!("audit trail: {p}")));
    }
    notes.extend(chain.notes.iter().map(|n| format!("audit trail: {n}")));
    let domain_by_commit: BTreeMap<&str, Option<Domain>> =
        chain.commits.iter().map(|c| (c.hash.as_str(), c.domain)).collect();
    for p in crate::engine::anchor_problems(repo, chain) {
        let named = p
            .strip_prefix("commit ")
            .and_then(|rest| rest.split([':', ' ']).next())
            .and_then(|h| domain_by_commit.get(h).copied().flatten());
        causes.push((named, format!("audit trail against the remote: {p}")));
    }

    // Signatures, since the trust start.
    if settings.git.signing_key.is_none() {
        notes.push("signatures not checked: CONFIG_BACKUP_SIGNING_KEY is not set".to_owned());
        return Ok(HistoryFound { causes, notes });
    }
    let mut walk = repo.revwalk()?;
    walk.push(head)?;
    let since = match &settings.git.signing_trust_start {
        Some(start) => match Oid::from_str(start).ok().filter(|id| repo.find_commit(*id).is_ok()) {
            Some(id) => {
                walk.hide(id)?;
                format!("every commit after the trust start {start}")
            }
            None => {
                causes.push((
                    None,
                    format!(
                        "the trust start {start} (CONFIG_BACKUP_SIGNING_TRUST_START) is not on the remote: \
                         the history was rewritten below it, or the setting names another repository"
                    ),
                ));
                return Ok(HistoryFound { causes, notes });
            }
        },
        None => "every commit (CONFIG_BACKUP_SIGNING_TRUST_START is not set)".to_owned(),
    };
    let mut checked = 0u64;
    for id in walk {
        let id = id?;
        checked += 1;
        if let Some(Err(why)) = wc.verify_commit(id)? {
            let domain = domain_of(repo, id);
            let hint = if domain.is_none() {
                "; it is not a commit of this service (no domain trailer)"
            } else {
                ""
            };
            causes.push((
                domain,
                format!("commit {id}: {why}{hint}; signatures are required on {since}"),
            ));
        }
    }
    notes.push(format!("signatures: {checked} commit(s) checked: {since}"));
    Ok(HistoryFound { causes, notes })
}

/// The newest commit of `domain` along the first parents of `head`.
fn newest_of(repo: &Repository, head: Oid, domain: Domain) -> Result<Option<Oid>, RepoError> {
    let mut walk = repo.revwalk()?;
    walk.push(head)?;
    walk.simplify_first_parent()?;
    for id in walk {
        let id = id?;
        if domain_of(repo, id) == Some(domain) {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// The commit along the first parents of `head` that gave `path` its content at `head`.
fn changed_at(repo: &Repository, head: Oid, path: &str) -> Option<Oid> {
    let entry = |c: &git2::Commit<'_>| c.tree().ok()?.get_path(Path::new(path)).ok().map(|e| e.id());
    let mut commit = repo.find_commit(head).ok()?;
    let wanted = entry(&commit);
    for _ in 0..WALK_LIMIT {
        let Ok(parent) = commit.parent(0) else {
            return Some(commit.id());
        };
        if entry(&parent) != wanted {
            return Some(commit.id());
        }
        commit = parent;
    }
    None
}

/// One domain's files at the remote's head against the trail, unsealed with the key file.
pub(super) fn domain(
    settings: &Settings,
    dir: &Path,
    head: Oid,
    d: Domain,
    trail: &TrailView,
    key: &Result<Sealer, String>,
) -> Result<DomainFound, RepoError> {
    let wc = WorkingCopy::open_clone(&settings.git, dir)?;
    let repo = wc.repository();
    let mut causes = Vec::new();
    let newest = newest_of(repo, head, d)?;
    match (&trail.last_commit, newest) {
        (None, None) => causes.push(format!(
            "no backup of {d} yet: the remote and the audit trail hold none"
        )),
        (Some(t), None) => causes.push(format!(
            "commit {t}: the audit trail's last {d} commit, but the remote has no {d} commit"
        )),
        (None, Some(n)) => causes.push(format!(
            "commit {n}: the remote's newest {d} commit, but the audit trail has no {d} commit"
        )),
        (Some(t), Some(n)) if *t != n.to_string() => causes.push(format!(
            "commit {n}: the remote's newest {d} commit is not the audit trail's last ({t}): the remote lacks it \
             (not pushed yet) or the history was rewritten"
        )),
        _ => {}
    }
    let manifest = wc.manifest_at(Some(head), d)?;
    let tree = repo.find_commit(head)?.tree()?;
    let recorded: BTreeMap<&str, &crate::store::LiveFile> = trail.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let validate = settings.rollback.commands(d).validate.is_some();
    let mut restored = Vec::new();
    let mut complete = true;
    let at = |path: &str| changed_at(repo, head, path).unwrap_or(head);
    for (path, entry) in &manifest {
        let blob = match tree
            .get_path(Path::new(path.as_str()))
            .and_then(|e| repo.find_blob(e.id()))
        {
            Ok(b) => b,
            Err(_) => {
                causes.push(format!(
                    "commit {head}: {path}: in the {d} manifest but not in the tree"
                ));
                complete = false;
                continue;
            }
        };
        let stored = blob.content();
        let sha = hex::encode(Sha256::digest(stored));
        if sha != entry.sha256 {
            causes.push(format!(
                "commit {}: {path}: its content (sha256 {}) is not what the {d} manifest says ({})",
                at(path.as_str()),
                short(&sha),
                short(&entry.sha256)
            ));
        }
        match recorded.get(path.as_str()) {
            None => causes.push(format!(
                "commit {}: {path}: on the remote, but not in the audit trail",
                at(path.as_str())
            )),
            Some(r) if r.sha256 != sha => causes.push(format!(
                "commit {}: {path}: the remote holds sha256 {}, the audit trail recorded {}",
                at(path.as_str()),
                short(&sha),
                short(&r.sha256)
            )),
            Some(r) => {
                if let (Some(m), Some(rm)) = (&entry.meta, &r.meta)
                    && m.record() != *rm
                {
                    causes.push(format!(
                        "commit {}: {path}: the remote restores it as {}, the audit trail recorded {rm}",
                        at(path.as_str()),
                        m.record()
                    ));
                }
            }
        }
        let content = if entry.mode != GIT_SYMLINK && crate::secrets::is_sealed(stored) {
            match key.as_ref().map(|k| k.unseal(path.as_str(), stored)) {
                Ok(Ok(c)) => c.into_owned(),
                Ok(Err(e)) => {
                    causes.push(format!("commit {}: {path}: cannot unseal: {e}", at(path.as_str())));
                    complete = false;
                    continue;
                }
                Err(e) => {
                    causes.push(format!("commit {}: {path}: cannot unseal: {e}", at(path.as_str())));
                    complete = false;
                    continue;
                }
            }
        } else {
            stored.to_vec()
        };
        if validate {
            restored.push(TargetFile {
                domain: d,
                path: path.clone(),
                content,
                mode: entry.mode,
                meta: entry.meta.clone(),
            });
        }
    }
    let present: std::collections::HashSet<&str> = manifest.keys().map(|p| p.as_str()).collect();
    for f in &trail.files {
        if !present.contains(f.path.as_str()) {
            causes.push(format!(
                "commit {head}: {}: in the audit trail, but not on the remote",
                f.path
            ));
        }
    }
    Ok(DomainFound {
        commit: newest.map(|n| n.to_string()),
        files: manifest.len() as u64,
        causes,
        restored: (validate && complete && !manifest.is_empty()).then_some(restored),
    })
}
