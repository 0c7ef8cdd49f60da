//! Diff between two commits of the backup repository, per file, with each file's domain,
//! line counts and a capped unified patch. Binary files are flagged, never dumped.

use std::collections::BTreeMap;
use std::path::Path;

use git2::{ErrorCode, Oid, Repository};

use crate::domain::{CommitHash, CommitPrefix, Domain, RepoPath};
use crate::error::EngineError;
use crate::repo::{ChangeKind, WorkingCopy};

/// Caps on patch text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiffLimits {
    /// Bytes of patch per file.
    pub per_file_bytes: usize,
    /// Bytes of patch in the whole answer.
    pub total_bytes: usize,
}

impl Default for DiffLimits {
    fn default() -> Self {
        DiffLimits {
            per_file_bytes: 256 * 1024,
            total_bytes: 4 * 1024 * 1024,
        }
    }
}

/// What to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffQuery {
    /// The older commit.
    pub commit1: CommitPrefix,
    /// The newer commit.
    pub commit2: CommitPrefix,
    /// Only files of this domain.
    pub domain: Option<Domain>,
    /// Only this path.
    pub path: Option<RepoPath>,
    /// Patch caps.
    pub limits: DiffLimits,
}

/// One file's difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDiff {
    /// The path.
    pub path: String,
    /// Its domain, if a manifest at either commit lists it.
    pub domain: Option<Domain>,
    /// Added, modified or deleted.
    pub kind: ChangeKind,
    /// Lines added.
    pub additions: usize,
    /// Lines deleted.
    pub deletions: usize,
    /// Unified patch (empty for binary files).
    pub patch: String,
    /// Whether the file is binary.
    pub binary: bool,
    /// Whether the patch was cut.
    pub truncated: bool,
    /// Old git mode.
    pub old_mode: Option<u32>,
    /// New git mode.
    pub new_mode: Option<u32>,
}

/// The difference between two commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffResult {
    /// commit1 resolved.
    pub commit1: CommitHash,
    /// commit2 resolved.
    pub commit2: CommitHash,
    /// Changed files, in path order.
    pub files: Vec<FileDiff>,
    /// Lines added in all files.
    pub additions: usize,
    /// Lines deleted in all files.
    pub deletions: usize,
    /// Whether any patch was cut.
    pub truncated: bool,
}

/// Resolves a full or abbreviated hex to a commit: ambiguous → invalid argument,
/// unknown → not found.
pub fn resolve(repo: &Repository, prefix: &CommitPrefix, field: &'static str) -> Result<Oid, EngineError> {
    match repo.find_commit_by_prefix(prefix.as_str()) {
        Ok(c) => Ok(c.id()),
        Err(e) if e.code() == ErrorCode::Ambiguous => Err(EngineError::InvalidArgument {
            field,
            message: format!("{} is ambiguous: give more hexadecimal digits", prefix.as_str()),
        }),
        Err(e) if e.code() == ErrorCode::NotFound || e.code() == ErrorCode::InvalidSpec => Err(EngineError::NotFound(
            format!("{field}: commit {} not found in the backup repository", prefix.as_str()),
        )),
        Err(e) => Err(EngineError::Internal(format!("looking up {}: {e}", prefix.as_str()))),
    }
}

fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Compares two commits.
pub fn diff(wc: &WorkingCopy, q: &DiffQuery) -> Result<DiffResult, EngineError> {
    let repo = wc.repository();
    let c1 = resolve(repo, &q.commit1, "commit1")?;
    let c2 = resolve(repo, &q.commit2, "commit2")?;
    diff_oids(wc, Some(c1), c2, q)
}

/// What one commit changed against its first parent (or against nothing, for the first).
pub fn commit_changes(wc: &WorkingCopy, commit: Oid, limits: DiffLimits) -> Result<DiffResult, EngineError> {
    let parent = wc
        .repository()
        .find_commit(commit)
        .map_err(|e| EngineError::Internal(e.to_string()))?
        .parent_ids()
        .next();
    let any: CommitPrefix = commit
        .to_string()
        .parse()
        .map_err(|e: crate::domain::BadCommitPrefix| EngineError::Internal(e.to_string()))?;
    let q = DiffQuery {
        commit1: any.clone(),
        commit2: any,
        domain: None,
        path: None,
        limits,
    };
    diff_oids(wc, parent, commit, &q)
}

fn diff_oids(wc: &WorkingCopy, c1: Option<Oid>, c2: Oid, q: &DiffQuery) -> Result<DiffResult, EngineError> {
    let repo = wc.repository();
    let git = |e: git2::Error| EngineError::Internal(format!("diff: {e}"));
    let t1 = c1
        .map(|c| repo.find_commit(c).and_then(|c| c.tree()))
        .transpose()
        .map_err(git)?;
    let t2 = repo.find_commit(c2).and_then(|c| c.tree()).map_err(git)?;

    // Which domain each path belongs to, from the manifests at both ends.
    let mut owner: BTreeMap<String, Domain> = BTreeMap::new();
    for d in Domain::ALL {
        for commit in [c1, Some(c2)] {
            for path in wc
                .manifest_at(commit, d)
                .map_err(|e| EngineError::Internal(e.to_string()))?
                .keys()
            {
                owner.entry(path.to_string()).or_insert(d);
            }
        }
    }

    let mut opts = git2::DiffOptions::new();
    if let Some(p) = &q.path {
        opts.pathspec(p.as_str()).disable_pathspec_match(true);
    }
    let diff = repo
        .diff_tree_to_tree(t1.as_ref(), Some(&t2), Some(&mut opts))
        .map_err(git)?;
    let mut out = DiffResult {
        commit1: c1.unwrap_or(c2).into(),
        commit2: c2.into(),
        files: Vec::new(),
        additions: 0,
        deletions: 0,
        truncated: false,
    };
    let mut budget = q.limits.total_bytes;
    for (idx, delta) in diff.deltas().enumerate() {
        let file = delta
            .new_file()
            .path()
            .or_else(|| delta.old_file().path())
            .unwrap_or(Path::new(""));
        let path = file.to_string_lossy().into_owned();
        if path.starts_with(crate::repo::METADATA_DIR) {
            continue;
        }
        let domain = owner.get(&path).copied();
        if q.domain.is_some() && domain != q.domain {
            continue;
        }
        let kind = match delta.status() {
            git2::Delta::Added => ChangeKind::Added,
            git2::Delta::Deleted => ChangeKind::Deleted,
            _ => ChangeKind::Modified,
        };
        let mode = |f: git2::DiffFile<'_>| (!f.id().is_zero()).then(|| i32::from(f.mode()) as u32);
        let mut fd = FileDiff {
            path,
            domain,
            kind,
            additions: 0,
            deletions: 0,
            patch: String::new(),
            binary: delta.flags().is_binary(),
            truncated: false,
            old_mode: mode(delta.old_file()),
            new_mode: mode(delta.new_file()),
        };
        match git2::Patch::from_diff(&diff, idx).map_err(git)? {
            Some(mut patch) if !fd.binary && !patch.delta().flags().is_binary() => {
                let (_, adds, dels) = patch.line_stats().map_err(git)?;
                fd.additions = adds;
                fd.deletions = dels;
                let buf = patch.to_buf().map_err(git)?;
                let text = String::from_utf8_lossy(&buf);
                let cap = q.limits.per_file_bytes.min(budget);
                let kept = cut(&text, cap);
                fd.truncated = kept.len() < text.len();
                budget -= kept.len();
                fd.patch = kept.to_owned();
            }
            _ => fd.binary = true,
        }
        out.additions += fd.additions;
        out.deletions += fd.deletions;
        out.truncated |= fd.truncated;
        out.files.push(fd);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(super::cut("héllo", 2), "h");
        assert_eq!(super::cut("hello", 10), "hello");
    }
}
