//! The git working copy: opening or cloning it, staging a domain's files, one commit per
//! domain, manifests, and the push with its verification. Everything here is blocking
//! (git2): callers run it through [`crate::blocking`], never on the async runtime.
//!
//! Each domain's commit carries a manifest at `.config-backup/<domain>.sha256` in
//! `sha256sum` format. It says which files belong to the domain and their SHA-256, so
//! change detection never re-reads old blobs, the audit rows of any commit can be
//! derived from the repository alone (crash recovery), and an operator can check a
//! checkout with `sha256sum -c`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use git2::{Commit, ErrorCode, FileMode, IndexEntry, IndexTime, Oid, Repository, Signature, Tree};

use crate::domain::{Domain, RepoPath};
use crate::metadata::{self, FileMeta};
use crate::settings::GitSettings;
use crate::transport::Session;

mod files;
mod manifest;
mod push;

use files::write_work_file;
pub use files::{LiveWrite, stage_into, write_all_atomically, write_atomically, write_live_atomically};
pub use manifest::{TreeFiles, manifest_path};
use manifest::{read_manifest, render_manifest, render_meta};

pub use crate::domain::METADATA_DIR;
/// The commit trailer naming the domain.
pub const TRAILER_DOMAIN: &str = "Config-Backup-Domain";
/// The commit trailer naming the run (or rollback task).
pub const TRAILER_RUN: &str = "Config-Backup-Run";
/// The commit trailer naming who asked ("system" for the schedule).
pub const TRAILER_BY: &str = "Config-Backup-By";

/// A problem with the working copy or the remote.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The working copy belongs to another remote.
    #[error(
        "the working copy {dir} is a clone of {found:?}, not of GIT_BACKUP_REPO {expected:?}; \
         move it away or point GIT_WORKING_DIR elsewhere"
    )]
    ForeignRemote {
        /// The working directory.
        dir: PathBuf,
        /// Its origin.
        found: String,
        /// The configured remote.
        expected: String,
    },
    /// The working copy cannot be opened or read.
    #[error("the working copy {dir} is damaged: {source}")]
    Damaged {
        /// The working directory.
        dir: PathBuf,
        /// What git said.
        source: git2::Error,
    },
    /// The directory exists, is not empty and is not a repository.
    #[error("GIT_WORKING_DIR {0} exists and is not a git repository")]
    NotARepository(PathBuf),
    /// The remote could not be cloned.
    #[error("cannot clone the backup remote {remote}: {source}")]
    Clone {
        /// The remote.
        remote: String,
        /// What git said.
        source: git2::Error,
    },
    /// A git operation failed.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl RepoError {
    /// A git write error with its OS cause. libgit2 reports some failed writes (a full
    /// disk while writing an object) with no message at all ("no error"): the cause is
    /// then taken from the filesystem holding `dir` (no space left, read-only), else from
    /// errno when it holds a write error (call this right after the failing call), and
    /// `context` says what was being written where. Other errors are returned as they are.
    pub(crate) fn with_os_cause(self, dir: &Path, needed: u64, context: impl FnOnce() -> String) -> RepoError {
        let errno = std::io::Error::last_os_error();
        match self {
            RepoError::Git(e) if e.message().is_empty() || e.message() == "no error" => {
                const WRITE_ERRORS: [i32; 7] = [
                    libc::ENOSPC,
                    libc::EDQUOT,
                    libc::EROFS,
                    libc::EIO,
                    libc::EACCES,
                    libc::EPERM,
                    libc::EFBIG,
                ];
                let source = files::filesystem_cause(dir, needed)
                    .or_else(|| errno.raw_os_error().filter(|c| WRITE_ERRORS.contains(c)).map(|_| errno))
                    .unwrap_or_else(|| std::io::Error::other("libgit2 reported the failure without a cause"));
                RepoError::Io {
                    context: context(),
                    source,
                }
            }
            other => other,
        }
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RepoError {
    let context = context.into();
    move |source| RepoError::Io { context, source }
}

/// One file of a manifest: content hash, git mode and metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// SHA-256 of the content (a symlink's: of its target text), lower-case hex.
    pub sha256: String,
    /// Git file mode: 0o100644, 0o100755 or 0o120000 (a symlink).
    pub mode: u32,
    /// Type, full mode, owner and group; `None` in a commit made before they were kept.
    pub meta: Option<FileMeta>,
}

impl ManifestEntry {
    /// Whether `other` is another state of the file: its content, git mode, or (when
    /// both are known) its type, mode, owner or group differ.
    pub fn differs(&self, other: &ManifestEntry) -> bool {
        self.sha256 != other.sha256
            || self.mode != other.mode
            || matches!((&self.meta, &other.meta), (Some(a), Some(b)) if !a.same_access(b))
    }
}

/// A file written into the object database, waiting for its commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staged {
    /// The blob.
    pub id: Oid,
    /// Its size.
    pub len: usize,
}

/// A domain's files at one commit.
pub type Manifest = BTreeMap<RepoPath, ManifestEntry>;

/// How a file changed in a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// New in this commit.
    Added,
    /// Content or mode changed.
    Modified,
    /// Removed.
    Deleted,
    /// Unchanged.
    Unchanged,
}

impl ChangeKind {
    /// Name in the API and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Modified => "modified",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Unchanged => "unchanged",
        }
    }

    /// The letter of a commit-message body line.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Modified => 'M',
            ChangeKind::Deleted => 'D',
            ChangeKind::Unchanged => ' ',
        }
    }

    /// Parses an API name.
    pub fn parse(s: &str) -> Option<ChangeKind> {
        [
            ChangeKind::Added,
            ChangeKind::Modified,
            ChangeKind::Deleted,
            ChangeKind::Unchanged,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One file's state change between a commit and its parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// The path.
    pub path: RepoPath,
    /// What happened.
    pub kind: ChangeKind,
    /// Before (absent when added).
    pub old: Option<ManifestEntry>,
    /// After (absent when deleted).
    pub new: Option<ManifestEntry>,
}

impl FileRecord {
    /// The change of type, mode, owner or group in words ("mode 0600 → 0644"), when both
    /// sides carry metadata; a symlink's new target is content, told as "link → TARGET"
    /// by whoever holds it.
    pub fn metadata_changes(&self) -> Vec<String> {
        match (
            self.old.as_ref().and_then(|o| o.meta.as_ref()),
            self.new.as_ref().and_then(|n| n.meta.as_ref()),
        ) {
            (Some(o), Some(n)) => metadata::describe(o, n),
            _ => Vec::new(),
        }
    }
}

/// Compares two manifests, in path order.
pub fn compare(old: &Manifest, new: &Manifest) -> Vec<FileRecord> {
    let mut out = Vec::with_capacity(new.len().max(old.len()));
    for (path, n) in new {
        let kind = match old.get(path) {
            None => ChangeKind::Added,
            Some(o) if o.differs(n) => ChangeKind::Modified,
            Some(_) => ChangeKind::Unchanged,
        };
        out.push(FileRecord {
            path: path.clone(),
            kind,
            old: old.get(path).cloned(),
            new: Some(n.clone()),
        });
    }
    for (path, o) in old {
        if !new.contains_key(path) {
            out.push(FileRecord {
                path: path.clone(),
                kind: ChangeKind::Deleted,
                old: Some(o.clone()),
                new: None,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// A backup commit read back from the repository.
#[derive(Debug, Clone)]
pub struct CommitInfo {
    /// The commit.
    pub id: Oid,
    /// Its first parent.
    pub parent: Option<Oid>,
    /// Its domain (from the trailer).
    pub domain: Domain,
    /// The run or task that made it (from the trailer).
    pub run_id: Option<uuid::Uuid>,
    /// The full message.
    pub message: String,
    /// The commit time.
    pub time: chrono::DateTime<chrono::Utc>,
    /// Every file of the domain, changed or not, plus deletions (or, from
    /// [`WorkingCopy::commit_changes`], the changed ones only).
    pub files: Vec<FileRecord>,
    /// The blob id of the domain's manifest in this commit.
    pub manifest: Option<Oid>,
    /// The blob id of the domain's manifest in the parent.
    pub parent_manifest: Option<Oid>,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushResult {
    /// The remote head after the push, read back.
    pub remote_head: Oid,
    /// Our commits rebased onto commits found on the remote: (old, new, new parent).
    pub rewritten: Rewrites,
    /// Commits found on the remote that we did not have.
    pub foreign_commits: usize,
}

/// Commits rebased onto the remote: (old, new, new parent), in order.
pub type Rewrites = Vec<(Oid, Oid, Oid)>;

/// What [`WorkingCopy::sync`] brought in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncResult {
    /// Our commits rebased onto the remote's: (old, new, new parent).
    pub rewritten: Rewrites,
    /// Commits found on the remote that we did not have.
    pub foreign_commits: usize,
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The transport failed (unreachable, authentication, host key, timeout).
    #[error("push to {remote} failed: {message}")]
    Transport {
        /// The remote, password removed.
        remote: String,
        /// What went wrong.
        message: String,
    },
    /// The remote refused the reference (hook, protection, non-fast-forward).
    #[error("the remote rejected {refname}: {reason}")]
    Rejected {
        /// The reference.
        refname: String,
        /// The remote's reason.
        reason: String,
    },
    /// The remote branch read back after the push is not our head.
    #[error("push not verified: the remote {branch} is at {remote} but the local head is {local}")]
    Unverified {
        /// The branch.
        branch: String,
        /// The remote's head, or "nothing".
        remote: String,
        /// Ours.
        local: String,
    },
    /// The remote has commits our unpushed commits do not apply on cleanly.
    #[error(
        "diverged: the remote {branch} (at {remote}) has commits that our {unpushed} unpushed commit(s) do not \
         apply on cleanly; they are kept in the working copy and nothing was pushed (never forced): a human must \
         reconcile them"
    )]
    Diverged {
        /// The branch.
        branch: String,
        /// The remote head.
        remote: String,
        /// Our commits not on the remote.
        unpushed: usize,
    },
    /// The working copy could not be updated.
    #[error("{0}")]
    Local(String),
}

/// The working copy, open for one run.
pub struct WorkingCopy {
    repo: Repository,
    git: GitSettings,
}

impl std::fmt::Debug for WorkingCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkingCopy")
            .field("dir", &self.git.working_dir)
            .finish()
    }
}

/// Creates the embedded default remote (a bare repository) if it does not exist.
pub fn ensure_bare_remote(path: &Path, branch: &str) -> Result<(), RepoError> {
    if path.join("HEAD").exists() {
        return Ok(());
    }
    let mut opts = git2::RepositoryInitOptions::new();
    opts.bare(true).initial_head(branch).mkpath(true);
    Repository::init_opts(path, &opts)?;
    Ok(())
}

impl WorkingCopy {
    /// Opens `GIT_WORKING_DIR`, or clones it from the remote when missing (an empty
    /// remote gives an empty repository). Refuses a clone of another remote and a
    /// damaged repository without changing anything.
    pub fn open(git: &GitSettings) -> Result<WorkingCopy, RepoError> {
        let dir = &git.working_dir;
        if dir.join(".git").exists() {
            let repo = Repository::open(dir).map_err(|source| RepoError::Damaged {
                dir: dir.clone(),
                source,
            })?;
            let origin = repo.find_remote("origin").map_err(|source| RepoError::Damaged {
                dir: dir.clone(),
                source,
            })?;
            let found = origin.url().unwrap_or_default().to_owned();
            if normalize_remote(&found) != normalize_remote(&git.remote) {
                return Err(RepoError::ForeignRemote {
                    dir: dir.clone(),
                    found,
                    expected: git.remote.clone(),
                });
            }
            drop(origin);
            let wc = WorkingCopy { repo, git: git.clone() };
            wc.check_health()?;
            return Ok(wc);
        }
        if dir.exists()
            && std::fs::read_dir(dir)
                .map_err(io_err(format!("reading {}", dir.display())))?
                .next()
                .is_some()
        {
            return Err(RepoError::NotARepository(dir.clone()));
        }
        Self::clone_into(git)
    }

    /// Opens the working copy for reading; None when there is none yet.
    pub fn open_existing(git: &GitSettings) -> Result<Option<WorkingCopy>, RepoError> {
        if !git.working_dir.join(".git").exists() {
            return Ok(None);
        }
        WorkingCopy::open(git).map(Some)
    }

    /// Clones into a temporary sibling and renames it into place, so a failed clone
    /// leaves nothing behind and the next run tries again.
    fn clone_into(git: &GitSettings) -> Result<WorkingCopy, RepoError> {
        let dir = &git.working_dir;
        let parent = dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(io_err(format!("creating {}", parent.display())))?;
        let tmp = tempfile::Builder::new()
            .prefix(".config-backup-clone-")
            .tempdir_in(parent)
            .map_err(io_err(format!(
                "creating a temporary directory in {}",
                parent.display()
            )))?;
        {
            let mut opts = git2::RepositoryInitOptions::new();
            opts.initial_head(&git.branch);
            let repo = Repository::init_opts(tmp.path(), &opts)?;
            repo.remote("origin", &git.remote)?;
            let mut remote = repo.find_remote("origin")?;
            let refspec = format!("+refs/heads/{b}:refs/remotes/origin/{b}", b = git.branch);
            let session = Session::new(git);
            remote
                .fetch(&[&refspec], Some(&mut session.fetch_options()), None)
                .map_err(|e| RepoError::Clone {
                    remote: crate::settings::redact_url(&git.remote),
                    source: git2::Error::from_str(&session.explain(&e)),
                })?;
            if let Ok(tracking) = repo.find_reference(&format!("refs/remotes/origin/{}", git.branch)) {
                let target = tracking
                    .target()
                    .ok_or_else(|| git2::Error::from_str("symbolic tracking ref"))?;
                repo.reference(&format!("refs/heads/{}", git.branch), target, true, "clone")?;
                repo.set_head(&format!("refs/heads/{}", git.branch))?;
                repo.checkout_head(Some(git2::build::CheckoutBuilder::new().force()))?;
            }
        }
        if dir.exists() {
            std::fs::remove_dir(dir).map_err(io_err(format!("replacing the empty {}", dir.display())))?;
        }
        let tmp = tmp.keep();
        std::fs::rename(&tmp, dir).map_err(io_err(format!("moving the clone to {}", dir.display())))?;
        let repo = Repository::open(dir)?;
        Ok(WorkingCopy { repo, git: git.clone() })
    }

    /// HEAD must be our branch and readable.
    fn check_health(&self) -> Result<(), RepoError> {
        let damaged = |source| RepoError::Damaged {
            dir: self.git.working_dir.clone(),
            source,
        };
        match self.repo.head() {
            Ok(head) => {
                if head.name().ok() != Some(format!("refs/heads/{}", self.git.branch).as_str()) {
                    return Err(damaged(git2::Error::from_str(&format!(
                        "HEAD is {}, not the branch {} (GIT_BACKUP_BRANCH)",
                        head.name().unwrap_or("detached"),
                        self.git.branch
                    ))));
                }
                head.peel_to_commit().map_err(damaged)?.tree().map_err(damaged)?;
            }
            Err(e) if e.code() == ErrorCode::UnbornBranch => {}
            Err(e) => return Err(damaged(e)),
        }
        Ok(())
    }

    /// Removes lock files left by a process that died. Only call while holding the
    /// engine lock: then no other writer can own them.
    pub fn recover_stale_locks(&self) -> Vec<PathBuf> {
        let gitdir = self.repo.path();
        let mut removed = Vec::new();
        let candidates = [
            gitdir.join("index.lock"),
            gitdir.join("HEAD.lock"),
            gitdir.join("packed-refs.lock"),
            gitdir.join(format!("refs/heads/{}.lock", self.git.branch)),
            gitdir.join(format!("refs/remotes/origin/{}.lock", self.git.branch)),
        ];
        for lock in candidates {
            if lock.exists() && std::fs::remove_file(&lock).is_ok() {
                removed.push(lock);
            }
        }
        removed
    }

    /// Puts the index (and, if it had drifted, the work tree) back to HEAD, dropping
    /// anything a crashed run staged but did not commit, or a failed step of this working
    /// copy staged in memory (the index is read again from its file).
    pub fn reset_to_head(&self) -> Result<(), RepoError> {
        self.reset(false)
    }

    /// [`WorkingCopy::reset_to_head`] for a working copy just opened, which holds nothing
    /// in memory: an index file the last run marked clean for this HEAD is trusted
    /// without being read (reading and checking the index was a fifth of a no-change
    /// run at 4,000 files).
    pub fn reset_opened_to_head(&self) -> Result<(), RepoError> {
        self.reset(true)
    }

    fn reset(&self, opened: bool) -> Result<(), RepoError> {
        let head = self.head_commit()?;
        // The index file is byte for byte the one a run left matching this HEAD.
        let marked = head
            .as_ref()
            .is_some_and(|h| self.clean_mark().is_some_and(|m| m == (h.id(), self.index_checksum())));
        if opened && marked {
            return Ok(());
        }
        let mut index = self.repo.index()?;
        index.read(true)?;
        match head {
            Some(head) => {
                // No need to rebuild the index's trees to compare them (10 ms at 4,000 files).
                if marked {
                    return Ok(());
                }
                let tree = head.tree()?;
                let drifted = index.write_tree().map(|t| t != tree.id()).unwrap_or(true);
                if drifted {
                    tracing::warn!(dir = %self.git.working_dir.display(), "working copy drifted from HEAD; resetting it");
                    self.repo.reset(head.as_object(), git2::ResetType::Hard, None)?;
                }
            }
            None => {
                if !index.is_empty() {
                    index.clear()?;
                    index.write()?;
                }
            }
        }
        Ok(())
    }

    /// Notes that the index matches HEAD now (its checksum trailer and HEAD), so the next
    /// [`WorkingCopy::reset_to_head`] can trust it unread while neither moves. Any write
    /// to the index (a stopped run's partial staging) changes its checksum.
    pub fn mark_clean(&self) {
        let Ok(Some(head)) = self.head() else { return };
        let Some(sum) = self.index_checksum() else { return };
        let path = self.clean_mark_path();
        let text = format!("{head} {}\n", hex::encode(sum));
        if let Err(e) = path
            .parent()
            .map(std::fs::create_dir_all)
            .unwrap_or(Ok(()))
            .and_then(|_| std::fs::write(&path, text))
        {
            tracing::debug!(error = %e, "could not write the clean-index mark; the next run checks the index");
            let _ = std::fs::remove_file(&path);
        }
    }

    fn clean_mark_path(&self) -> PathBuf {
        self.repo.path().join("config-backup").join("clean-index")
    }

    fn clean_mark(&self) -> Option<(Oid, Option<Vec<u8>>)> {
        let text = std::fs::read_to_string(self.clean_mark_path()).ok()?;
        let (head, sum) = text.trim().split_once(' ')?;
        Some((Oid::from_str(head).ok()?, hex::decode(sum).ok()))
    }

    /// The index file's trailing SHA-1 (over its whole content).
    fn index_checksum(&self) -> Option<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(self.repo.path().join("index")).ok()?;
        f.seek(SeekFrom::End(-20)).ok()?;
        let mut sum = vec![0u8; 20];
        f.read_exact(&mut sum).ok()?;
        Some(sum)
    }

    /// The branch head, if there is one.
    pub fn head(&self) -> Result<Option<Oid>, RepoError> {
        Ok(self.head_commit()?.map(|c| c.id()))
    }

    fn head_commit(&self) -> Result<Option<Commit<'_>>, RepoError> {
        match self.repo.head() {
            Ok(h) => Ok(Some(h.peel_to_commit()?)),
            Err(e) if e.code() == ErrorCode::UnbornBranch || e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The underlying repository, for read-only queries.
    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// A domain's manifest at a commit (empty if the commit has none).
    pub fn manifest_at(&self, commit: Option<Oid>, domain: Domain) -> Result<Manifest, RepoError> {
        let Some(commit) = commit else {
            return Ok(Manifest::new());
        };
        let tree = self.repo.find_commit(commit)?.tree()?;
        read_manifest(&self.repo, &tree, domain)
    }

    /// How many files a domain has at a commit (the manifest's lines and the metadata's
    /// symlinks; cheap).
    pub fn manifest_len(&self, commit: Option<Oid>, domain: Domain) -> Result<usize, RepoError> {
        let Some(commit) = commit else { return Ok(0) };
        let tree = self.repo.find_commit(commit)?.tree()?;
        let files = match tree.get_path(Path::new(&manifest_path(domain))) {
            Ok(e) => self
                .repo
                .find_blob(e.id())?
                .content()
                .iter()
                .filter(|b| **b == b'\n')
                .count(),
            Err(e) if e.code() == ErrorCode::NotFound => 0,
            Err(e) => return Err(e.into()),
        };
        let links = match tree.get_path(Path::new(&metadata::meta_path(domain))) {
            Ok(e) => String::from_utf8_lossy(self.repo.find_blob(e.id())?.content())
                .lines()
                .filter(|l| l.split(' ').nth(1) == Some(metadata::FileType::Symlink.as_str()))
                .count(),
            Err(_) => 0,
        };
        Ok(files + links)
    }

    /// Writes a file's new content into the work tree and the object database at once,
    /// so a run never holds the contents of all changed files in memory.
    pub fn stage_file(&self, path: &RepoPath, content: &[u8], mode: u32) -> Result<Staged, RepoError> {
        stage_into(&self.repo, path, content, mode)
    }

    /// Commits a domain: the staged files, the deletions and the manifest.
    pub fn commit_domain(
        &self,
        domain: Domain,
        manifest: &Manifest,
        contents: &BTreeMap<RepoPath, Staged>,
        deleted: &[RepoPath],
        message: &str,
    ) -> Result<Oid, RepoError> {
        self.write_domain_commit(domain, manifest, contents, deleted, message)
            .map_err(|e| {
                e.with_os_cause(self.repo.path(), 0, || {
                    format!("committing domain {domain} in {}", self.repo.path().display())
                })
            })
    }

    /// After a domain failed: the work tree as at HEAD again, the files it wrote that
    /// HEAD does not have removed (a full disk leaves a partly written file behind). The
    /// objects it wrote are unreferenced and left to `git gc`.
    pub fn restore_work_tree(&self) -> Result<(), RepoError> {
        if self.head()?.is_none() {
            return Ok(());
        }
        let mut opts = git2::build::CheckoutBuilder::new();
        opts.force().remove_untracked(true);
        self.repo.checkout_head(Some(&mut opts))?;
        Ok(())
    }

    fn write_domain_commit(
        &self,
        domain: Domain,
        manifest: &Manifest,
        contents: &BTreeMap<RepoPath, Staged>,
        deleted: &[RepoPath],
        message: &str,
    ) -> Result<Oid, RepoError> {
        let workdir = self
            .repo
            .workdir()
            .ok_or_else(|| git2::Error::from_str("bare working copy"))?
            .to_path_buf();
        let manifest_path = manifest_path(domain);
        let manifest_text = render_manifest(manifest);
        let meta_path = metadata::meta_path(domain);
        let meta_text = render_meta(manifest);
        let sig = Signature::now(&self.git.user_name, &self.git.user_email)?;
        let parent = self.head_commit()?;
        let parents: Vec<&Commit<'_>> = parent.iter().collect();
        // Nothing changed: the commit reuses its parent's tree (the index and the work tree
        // already match it: the run started by resetting them to HEAD).
        if let Some(p) = &parent
            && contents.is_empty()
            && deleted.is_empty()
        {
            let tree = p.tree()?;
            let holds = |path: &str, text: &str| {
                tree.get_path(Path::new(path))
                    .ok()
                    .is_some_and(|e| Oid::hash_object(git2::ObjectType::Blob, text.as_bytes()).ok() == Some(e.id()))
            };
            if holds(&manifest_path, &manifest_text) && holds(&meta_path, &meta_text) {
                return Ok(self.repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)?);
            }
        }
        let mut index = self.repo.index()?;
        for (path, staged) in contents {
            let mode = manifest.get(path).map(|e| e.mode).unwrap_or(0o100644);
            let mut entry = index_entry(path.as_str(), mode, staged.len);
            entry.id = staged.id;
            index.add(&entry)?;
        }
        for path in deleted {
            let abs = workdir.join(path.as_str());
            match std::fs::remove_file(&abs) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(format!("removing {}", abs.display()))(e)),
            }
            index.remove_path(Path::new(path.as_str()))?;
        }
        write_work_file(&workdir, &manifest_path, manifest_text.as_bytes(), 0o100644)?;
        index.add_frombuffer(
            &index_entry(&manifest_path, 0o100644, manifest_text.len()),
            manifest_text.as_bytes(),
        )?;
        write_work_file(&workdir, &meta_path, meta_text.as_bytes(), 0o100644)?;
        index.add_frombuffer(
            &index_entry(&meta_path, 0o100644, meta_text.len()),
            meta_text.as_bytes(),
        )?;
        index.write()?;
        let tree_id = index.write_tree()?;
        let tree = self.repo.find_tree(tree_id)?;
        let id = self.repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)?;
        Ok(id)
    }

    /// Reads a backup commit: its domain, run and every file's change. `None` for a
    /// commit without our trailers (made by someone else).
    pub fn commit_info(&self, id: Oid) -> Result<Option<CommitInfo>, RepoError> {
        let commit = self.repo.find_commit(id)?;
        let message = commit.message().unwrap_or_default().to_owned();
        let Some(domain) = trailer(&message, TRAILER_DOMAIN).and_then(|d| d.parse::<Domain>().ok()) else {
            return Ok(None);
        };
        let run_id = trailer(&message, TRAILER_RUN).and_then(|r| r.parse().ok());
        let parent = commit.parent_ids().next();
        let tree = commit.tree()?;
        let new = read_manifest(&self.repo, &tree, domain)?;
        let old = self.manifest_at(parent, domain)?;
        let time = chrono::DateTime::from_timestamp(commit.time().seconds(), 0).unwrap_or_default();
        let (manifest, parent_manifest) = self.manifest_blobs(&tree, parent, domain)?;
        Ok(Some(CommitInfo {
            id,
            parent,
            domain,
            run_id,
            message,
            time,
            files: compare(&old, &new),
            manifest,
            parent_manifest,
        }))
    }

    /// The blob ids of the domain's manifest in `tree` and in the commit `parent`.
    fn manifest_blobs(
        &self,
        tree: &git2::Tree,
        parent: Option<Oid>,
        domain: Domain,
    ) -> Result<(Option<Oid>, Option<Oid>), RepoError> {
        let (path, meta) = (manifest_path(domain), metadata::meta_path(domain));
        // The manifest's blob, or, with metadata, one id for the pair: a commit that
        // changed only an owner or a mode holds another state of the domain.
        let blob = |t: &git2::Tree| {
            let manifest = t.get_path(Path::new(&path)).ok().map(|e| e.id())?;
            match t.get_path(Path::new(&meta)) {
                Ok(m) => Oid::hash_object(git2::ObjectType::Blob, format!("{manifest} {}", m.id()).as_bytes()).ok(),
                Err(_) => Some(manifest),
            }
        };
        let parent_blob = match parent {
            Some(p) => blob(&self.repo.find_commit(p)?.tree()?),
            None => None,
        };
        Ok((blob(tree), parent_blob))
    }

    /// A domain commit's information with only its changed files (added, modified,
    /// deleted): when the domain's manifest is the same object as in the parent (a
    /// no-change commit), nothing is read but the two trees. `None` for a commit that is
    /// not a domain commit.
    pub fn commit_changes(&self, id: Oid) -> Result<Option<CommitInfo>, RepoError> {
        let commit = self.repo.find_commit(id)?;
        let message = commit.message().unwrap_or_default().to_owned();
        let Some(domain) = trailer(&message, TRAILER_DOMAIN).and_then(|d| d.parse::<Domain>().ok()) else {
            return Ok(None);
        };
        let parent = commit.parent_ids().next();
        let tree = commit.tree()?;
        let (new_blob, old_blob) = self.manifest_blobs(&tree, parent, domain)?;
        let files = if new_blob == old_blob {
            Vec::new()
        } else {
            let new = read_manifest(&self.repo, &tree, domain)?;
            let old = self.manifest_at(parent, domain)?;
            compare(&old, &new)
                .into_iter()
                .filter(|f| f.kind != ChangeKind::Unchanged)
                .collect()
        };
        Ok(Some(CommitInfo {
            id,
            parent,
            domain,
            run_id: trailer(&message, TRAILER_RUN).and_then(|r| r.parse().ok()),
            message,
            time: chrono::DateTime::from_timestamp(commit.time().seconds(), 0).unwrap_or_default(),
            files,
            manifest: new_blob,
            parent_manifest: old_blob,
        }))
    }

    /// Commits reachable from HEAD, newest first, until `known` says one is already
    /// recorded (or `limit` is reached).
    pub fn unrecorded_commits(&self, mut known: impl FnMut(Oid) -> bool, limit: usize) -> Result<Vec<Oid>, RepoError> {
        let Some(head) = self.head()? else {
            return Ok(Vec::new());
        };
        let mut walk = self.repo.revwalk()?;
        walk.push(head)?;
        walk.simplify_first_parent()?;
        let mut out = Vec::new();
        for id in walk {
            let id = id?;
            if known(id) || out.len() >= limit {
                break;
            }
            out.push(id);
        }
        Ok(out)
    }

    /// The repositories to keep compact with `git gc --auto` when the git CLI is present
    /// (it packs loose objects only when there are many; libgit2 has no gc): the working
    /// copy, and a remote that is a local directory (the embedded default): every push
    /// into it leaves a pack, and nothing else would ever repack it (a remote reached over
    /// SSH runs its own `gc --auto` after each push). See [`crate::maintenance`].
    pub fn maintenance_dirs(&self) -> Vec<PathBuf> {
        self.repo
            .workdir()
            .map(Path::to_path_buf)
            .into_iter()
            .chain(local_remote_dir(&self.git.remote))
            .collect()
    }

    /// The tree at HEAD, if any.
    pub fn head_tree(&self) -> Result<Option<Tree<'_>>, RepoError> {
        Ok(match self.head_commit()? {
            Some(c) => Some(c.tree()?),
            None => None,
        })
    }
}

/// Process-wide libgit2 tuning. Directory trees of a large site are bigger than libgit2's
/// default per-object cache limit (4 KiB), so every lookup re-read, re-inflated and
/// re-verified them; cache trees and commits of any realistic size, within a bounded total.
/// Pack files are mapped in windows of 8 MiB, at most 32 MiB at once (libgit2 maps up to
/// 8 GiB by default, and every mapped page read counts in the server's resident memory:
/// once a large site's objects are packed, a run reads its trees from all over the pack).
pub fn tune_libgit2() {
    // SAFETY: these store integers in libgit2's global options, read when objects are
    // cached and packs mapped; called before (and independently of) any repository use.
    #[allow(unsafe_code)]
    let result = unsafe {
        git2::opts::set_cache_object_limit(git2::ObjectType::Tree, 8 << 20)
            .and_then(|()| git2::opts::set_cache_object_limit(git2::ObjectType::Commit, 1 << 20))
            .and_then(|()| git2::opts::set_cache_max_size(32 << 20))
            .and_then(|()| git2::opts::set_mwindow_size(8 << 20))
            .and_then(|()| git2::opts::set_mwindow_mapped_limit(32 << 20))
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not tune the libgit2 object cache");
    }
}

/// The value of a `Key: value` trailer in the last paragraph.
pub fn trailer<'m>(message: &'m str, key: &str) -> Option<&'m str> {
    message
        .lines()
        .rev()
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| {
            l.strip_prefix(key)
                .and_then(|rest| rest.strip_prefix(':'))
                .map(str::trim)
        })
}

/// Git's mode for a file: executable or not.
pub fn git_mode(executable: bool) -> u32 {
    if executable {
        i32::from(FileMode::BlobExecutable) as u32
    } else {
        i32::from(FileMode::Blob) as u32
    }
}

/// Octal text of a git mode ("100644").
pub fn mode_text(mode: u32) -> String {
    format!("{mode:o}")
}

fn index_entry(path: &str, mode: u32, len: usize) -> IndexEntry {
    IndexEntry {
        ctime: IndexTime::new(0, 0),
        mtime: IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode,
        uid: 0,
        gid: 0,
        file_size: u32::try_from(len).unwrap_or(u32::MAX),
        id: Oid::ZERO_SHA1,
        flags: u16::try_from(path.len()).unwrap_or(0xfff).min(0xfff),
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    }
}

/// `git gc --auto` in `dir` when the git CLI is installed, waited for; never fails (a
/// failure is logged).
pub(crate) fn gc_auto(dir: &Path) {
    match std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "gc.autoDetach=false", "gc", "--auto", "--quiet"])
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => {}
        Ok(out) => tracing::warn!(
            dir = %dir.display(),
            stderr = %String::from_utf8_lossy(&out.stderr),
            "git gc --auto failed"
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::debug!("no git CLI: loose objects are not packed");
        }
        Err(e) => tracing::warn!(error = %e, "git gc --auto could not run"),
    }
}

/// The directory of a remote given as a local path or `file://` URL.
fn local_remote_dir(url: &str) -> Option<PathBuf> {
    local_path(url)
        .map(Path::new)
        .filter(|p| p.is_dir())
        .map(Path::to_path_buf)
}

/// The path of a remote given as an absolute local path or a `file://` URL.
fn local_path(url: &str) -> Option<&str> {
    let path = url.strip_prefix("file://").unwrap_or(url);
    path.starts_with('/').then_some(path)
}

/// Local paths and `file://` URLs name the same remote.
fn normalize_remote(url: &str) -> String {
    let url = url.trim_end_matches('/');
    match local_path(url) {
        Some(path) => std::fs::canonicalize(path)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| path.to_owned()),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path) -> GitSettings {
        GitSettings {
            remote: dir.join("remote.git").display().to_string(),
            remote_is_embedded: true,
            branch: "main".into(),
            working_dir: dir.join("wc"),
            user_name: "test".into(),
            user_email: "test@example.org".into(),
            ssh_key_path: None,
            ssh_known_hosts: None,
            ssh_key_passphrase_file: None,
            connect_timeout: std::time::Duration::from_secs(5),
            transfer_timeout: std::time::Duration::from_secs(5),
        }
    }

    /// Whether the working copy's (in-memory) index holds `path`.
    fn staged(wc: &WorkingCopy, path: &str) -> bool {
        wc.repository().index().unwrap().get_path(Path::new(path), 0).is_some()
    }

    #[test]
    fn a_marked_index_is_trusted_unread_only_when_just_opened_and_staging_in_memory_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let git = settings(dir.path());
        ensure_bare_remote(Path::new(&git.remote), &git.branch).unwrap();
        let wc = WorkingCopy::open(&git).unwrap();
        // One commit holding `kept`, its index written and marked clean, as a run leaves it.
        {
            let repo = wc.repository();
            let mut index = repo.index().unwrap();
            index.add_frombuffer(&index_entry("kept", 0o100644, 2), b"k\n").unwrap();
            index.write().unwrap();
            let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
            let sig = Signature::now("test", "test@example.org").unwrap();
            repo.commit(Some("HEAD"), &sig, &sig, "first", &tree, &[]).unwrap();
        }
        wc.mark_clean();
        drop(wc);

        // Just opened: the marked index is trusted, and it is HEAD's.
        let wc = WorkingCopy::open(&git).unwrap();
        wc.reset_opened_to_head().unwrap();
        assert!(staged(&wc, "kept"));

        // A failed step staged in memory and never wrote the index: its file still
        // matches the mark, yet the reset after the failure drops the staging.
        wc.repository()
            .index()
            .unwrap()
            .add_frombuffer(&index_entry("stray", 0o100644, 2), b"s\n")
            .unwrap();
        assert!(staged(&wc, "stray"));
        wc.reset_to_head().unwrap();
        assert!(
            !staged(&wc, "stray"),
            "the in-memory staging of a failed step is dropped"
        );
        assert!(staged(&wc, "kept"));
    }

    #[test]
    fn trailers_are_read_from_the_last_paragraph() {
        let m = "config backup 2026-11-26 dns: 2 files changed\n\nM a 1→2\n\nConfig-Backup-Domain: dns\nConfig-Backup-Run: x\n";
        assert_eq!(trailer(m, TRAILER_DOMAIN), Some("dns"));
        assert_eq!(trailer(m, TRAILER_RUN), Some("x"));
        assert_eq!(trailer("no trailers", TRAILER_DOMAIN), None);
    }

    #[test]
    fn compare_finds_every_kind_of_change() {
        let e = |s: &str, m| ManifestEntry {
            sha256: s.to_owned(),
            mode: m,
            meta: None,
        };
        let with = |s: &str, mode: u32, uid: u32| ManifestEntry {
            meta: Some(FileMeta {
                kind: metadata::FileType::File,
                mode,
                uid,
                gid: 0,
                owner: uid.to_string(),
                group: "root".into(),
            }),
            ..e(s, 0o100644)
        };
        let p = |s: &str| s.parse::<RepoPath>().unwrap();
        let old: Manifest = [
            (p("a"), e("1", 0o100644)),
            (p("b"), e("2", 0o100644)),
            (p("c"), e("3", 0o100644)),
            (p("k"), with("5", 0o600, 101)),
            (p("o"), with("6", 0o640, 101)),
            (p("u"), e("7", 0o100644)),
        ]
        .into();
        let new: Manifest = [
            (p("a"), e("1", 0o100644)),
            (p("b"), e("2", 0o100755)),
            (p("d"), e("4", 0o100644)),
            (p("k"), with("5", 0o644, 101)),
            (p("o"), with("6", 0o640, 0)),
            // Metadata first recorded: not a change of the file.
            (p("u"), with("7", 0o644, 0)),
        ]
        .into();
        let kinds: Vec<_> = compare(&old, &new)
            .iter()
            .map(|r| (r.path.to_string(), r.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("a".into(), ChangeKind::Unchanged),
                ("b".into(), ChangeKind::Modified),
                ("c".into(), ChangeKind::Deleted),
                ("d".into(), ChangeKind::Added),
                ("k".into(), ChangeKind::Modified),
                ("o".into(), ChangeKind::Modified),
                ("u".into(), ChangeKind::Unchanged)
            ]
        );
    }
}
