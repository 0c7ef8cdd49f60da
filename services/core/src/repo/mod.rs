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
use std::path::{Path, PathBuf};

use git2::{Commit, ErrorCode, FileMode, IndexEntry, IndexTime, Oid, Repository, Signature, Tree};

use crate::domain::{ChangeKind, Domain, RepoPath};
use crate::metadata::{self, FileMeta};
use crate::remote::RemoteUrl;
use crate::settings::GitSettings;
use crate::transport::Session;

mod commit;
mod files;
mod manifest;
mod push;
mod records;
mod worktree;

pub use commit::{CommitInfo, Summaries, trailer};
pub use files::stage_into;
use files::write_work_file;
pub use manifest::{ManifestBlobs, ManifestCache, TreeFiles, manifest_blob_ids, manifest_path};
use manifest::{read_manifest, render_manifest, render_meta};
pub use records::{FileRecord, Manifest, ManifestEntry, Staged, changes, compare, summarize_changes};

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
    /// The signing key cannot be used: nothing is committed unsigned.
    #[error("CONFIG_BACKUP_SIGNING_KEY: {0}")]
    Signing(String),
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
    /// `context` says what was being written where. An OS error libgit2 did describe
    /// ("failed to write out file: No space left on device") gets the same context, with
    /// its words as the cause. Other errors are returned as they are.
    pub(crate) fn with_os_cause(self, dir: &Path, needed: u64, context: impl FnOnce() -> String) -> RepoError {
        let errno = std::io::Error::last_os_error();
        match self {
            RepoError::Git(e)
                if e.class() == git2::ErrorClass::Os && !e.message().is_empty() && e.message() != "no error" =>
            {
                RepoError::Io {
                    context: context(),
                    source: std::io::Error::other(e.message().to_owned()),
                }
            }
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
                let source = crate::fs::filesystem_cause(dir, needed)
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
///
/// Invariant: the domain commits it makes go on its *tip*, not on the branch, until
/// [`WorkingCopy::publish_commits`] moves the branch to them in one reference update
/// (one lock file, one rename, one reflog line for a run's four commits, instead of one
/// of each per commit). Until then [`WorkingCopy::head`] is the tip, so each commit's
/// parent, and a failed domain's reset, are what they were; everything that reads or
/// moves the branch itself (a reset, a checkout, the push) publishes first. Commits not
/// published when a process stops are unreferenced: the branch is where it was, and the
/// next run commits the live files again.
pub struct WorkingCopy {
    repo: Repository,
    git: GitSettings,
    /// Signs every commit made here, when `CONFIG_BACKUP_SIGNING_KEY` is set.
    signer: Option<crate::signing::Signer>,
    /// The last commit made and not yet on the branch, and the branch's commit when the
    /// first of them was made (None: the branch was unborn).
    tip: std::cell::Cell<Option<(Oid, Option<Oid>)>>,
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
            if !RemoteUrl::same(&found, &git.remote) {
                return Err(RepoError::ForeignRemote {
                    dir: dir.clone(),
                    found,
                    expected: git.remote.clone(),
                });
            }
            drop(origin);
            let wc = WorkingCopy::with_signer(repo, git)?;
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
                    remote: crate::remote::redact_url(&git.remote),
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
        WorkingCopy::with_signer(repo, git)
    }

    /// A fresh bare clone of the remote's branch in `dir` (empty, the caller's temporary
    /// directory), fetched over the same transport as pushes (the same key and host-key
    /// checks): what a site restored from its remote would get. Nothing of the working
    /// copy is read. `Ok(None)`: the remote has no such branch yet.
    pub fn fresh_clone(git: &GitSettings, dir: &Path) -> Result<Option<(WorkingCopy, Oid)>, RepoError> {
        let mut opts = git2::RepositoryInitOptions::new();
        opts.bare(true).initial_head(&git.branch);
        let repo = Repository::init_opts(dir, &opts)?;
        {
            let mut remote = repo.remote_anonymous(&git.remote)?;
            let refspec = format!("+refs/heads/{b}:refs/heads/{b}", b = git.branch);
            let session = Session::new(git);
            remote
                .fetch(&[&refspec], Some(&mut session.fetch_options()), None)
                .map_err(|e| RepoError::Clone {
                    remote: crate::remote::redact_url(&git.remote),
                    source: git2::Error::from_str(&session.explain(&e)),
                })?;
        }
        let head = match repo.refname_to_id(&format!("refs/heads/{}", git.branch)) {
            Ok(id) => id,
            Err(e) if e.code() == ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut settings = git.clone();
        settings.working_dir = dir.to_path_buf();
        Ok(Some((WorkingCopy::with_signer(repo, &settings)?, head)))
    }

    /// A clone made by [`WorkingCopy::fresh_clone`], opened again (for reading).
    pub fn open_clone(git: &GitSettings, dir: &Path) -> Result<WorkingCopy, RepoError> {
        let repo = Repository::open_bare(dir)?;
        let mut settings = git.clone();
        settings.working_dir = dir.to_path_buf();
        WorkingCopy::with_signer(repo, &settings)
    }

    /// The working copy over `repo`, with the signer of `CONFIG_BACKUP_SIGNING_KEY` read now.
    fn with_signer(repo: Repository, git: &GitSettings) -> Result<WorkingCopy, RepoError> {
        let signer = git
            .signing_key
            .as_deref()
            .map(crate::signing::Signer::load)
            .transpose()
            .map_err(RepoError::Signing)?;
        Ok(WorkingCopy {
            repo,
            git: git.clone(),
            signer,
            tip: Default::default(),
        })
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

    /// Moves the branch to the commits made since the last call, in one reference
    /// update, if the branch is still where it was when the first of them was made (a
    /// writer that moved it meanwhile is not overwritten: the commits stay unreferenced
    /// and the error says so). Either way the tip is the branch's head afterwards.
    pub fn publish_commits(&self) -> Result<(), RepoError> {
        let Some((tip, base)) = self.tip.take() else {
            return Ok(());
        };
        // HEAD names the branch (it may not exist yet: the first commit creates it).
        let head = self.repo.find_reference("HEAD")?;
        let branch = head
            .symbolic_target()
            .map_err(|_| git2::Error::from_str("HEAD's target is not UTF-8"))?
            .unwrap_or("HEAD")
            .to_owned();
        let why = "backup: this run's commits";
        match base {
            Some(base) => self.repo.reference_matching(&branch, tip, true, base, why)?,
            None => self.repo.reference(&branch, tip, false, why)?,
        };
        Ok(())
    }

    /// The branch head, if there is one (the tip of the commits not yet published).
    pub fn head(&self) -> Result<Option<Oid>, RepoError> {
        Ok(self.head_commit()?.map(|c| c.id()))
    }

    fn head_commit(&self) -> Result<Option<Commit<'_>>, RepoError> {
        if let Some((tip, _)) = self.tip.get() {
            return Ok(Some(self.repo.find_commit(tip)?));
        }
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

    /// The repositories to keep compact when the git CLI is present (loose objects packed,
    /// small packs rolled up, each only past git's limits; libgit2 has no gc): the working
    /// copy, and a remote that is a local directory (the embedded default): every push
    /// into it leaves a pack, and nothing else would ever repack it (a remote reached over
    /// SSH runs its own `gc --auto` after each push). See [`crate::maintenance`].
    pub fn maintenance_dirs(&self) -> Vec<PathBuf> {
        self.repo
            .workdir()
            .map(Path::to_path_buf)
            .into_iter()
            .chain(RemoteUrl::local_dir(&self.git.remote))
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
/// Pack files are mapped at most 16 MiB at once (libgit2 maps up to 8 GiB by default, and
/// every mapped page read counts in the server's resident memory: once a large site's
/// objects are packed, a run reads its trees from all over the pack, and a 1 % change at
/// L, its 400 old blobs for the summaries: 28 MB resident at 32 MiB, 12–15 MB at 16 MiB),
/// in windows of 256 KiB: a Diff or a rollback's plan reads objects scattered over
/// packs of a hundred megabytes, and with 4 MiB windows the 16 MiB held only four, each
/// new one unmapping another (`munmap`, a TLB shootdown on every core, the pages faulted
/// in again): a Diff of 730 days through the server took 245–275 ms then, 187–190 ms now.
///
/// Objects read are not hashed again to check their names (libgit2's "strict hash
/// verification", which the git CLI does not do either): its collision-detecting SHA-1
/// over every blob read was a quarter of a Diff and of a rollback's planning. What is
/// restored or vouched for is checked where it matters, end to end, by SHA-256 against
/// the commit's manifest (a rollback's every target file, a drill's every file); a
/// corrupted object's zlib stream still fails its checksum when it is inflated.
///
/// The repositories' own config is the only one read: libgit2 does not look for the
/// host's (`/etc/gitconfig`, `~/.gitconfig`, `$XDG_CONFIG_HOME/git/config`). What is
/// backed up, and where it is pushed, cannot change with the account the service runs
/// under (a `core.autocrlf`, a `url.<base>.insteadOf`), and every open of a repository
/// and every config lookup no longer checks those files on disk (a tenth of a no-change
/// run's system calls at S).
pub fn tune_libgit2() {
    static TUNED: std::sync::Once = std::sync::Once::new();
    TUNED.call_once(tune_libgit2_once);
}

fn tune_libgit2_once() {
    git2::opts::strict_hash_verification(false);
    // SAFETY: these store integers and paths in libgit2's global options, read when
    // objects are cached, packs mapped and config files looked for; called before (and
    // independently of) any repository use.
    #[allow(unsafe_code)]
    let result = unsafe {
        git2::opts::set_cache_object_limit(git2::ObjectType::Tree, 8 << 20)
            .and_then(|()| git2::opts::set_cache_object_limit(git2::ObjectType::Commit, 1 << 20))
            .and_then(|()| git2::opts::set_cache_max_size(32 << 20))
            .and_then(|()| git2::opts::set_mwindow_size(256 << 10))
            .and_then(|()| git2::opts::set_mwindow_mapped_limit(16 << 20))
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not tune the libgit2 object cache");
    }
    for level in HOST_CONFIG_LEVELS {
        // SAFETY: as above; an empty search path makes libgit2 find no file at this level.
        // Setting it clears libgit2's path buffer in place (nothing is freed), so a
        // repository opened on another thread meanwhile reads the old path or none.
        #[allow(unsafe_code)]
        if let Err(e) = unsafe { git2::opts::set_search_path(level, "") } {
            tracing::warn!(error = %e, ?level, "could not keep libgit2 from reading the host's git config");
        }
    }
}

/// The config levels outside a repository, which libgit2 would otherwise read.
const HOST_CONFIG_LEVELS: [git2::ConfigLevel; 4] = [
    git2::ConfigLevel::ProgramData,
    git2::ConfigLevel::System,
    git2::ConfigLevel::XDG,
    git2::ConfigLevel::Global,
];

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

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn settings(dir: &Path) -> GitSettings {
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
            signing_key: None,
            signing_trust_start: None,
        }
    }

    #[test]
    fn libgit2_looks_for_no_git_config_outside_the_repositories() {
        tune_libgit2();
        for level in HOST_CONFIG_LEVELS {
            // SAFETY: reads a path libgit2 holds; it is set once per process, above.
            #[allow(unsafe_code)]
            let path = unsafe { git2::opts::get_search_path(level) }.unwrap();
            assert!(path.as_bytes().is_empty(), "{level:?} is searched in {path:?}");
        }
    }

    /// libgit2's zlib is the one linked into the binary (zlib-rs, `shims/libz-sys`): no
    /// system zlib is loaded, and an object written is inflated back whole.
    #[test]
    fn libgit2_deflates_and_inflates_with_the_linked_zlib_and_loads_no_system_zlib() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let content: Vec<u8> = (0..50_000u32).flat_map(|i| (i % 97).to_le_bytes()).collect();
        let id = repo.blob(&content).unwrap();
        // A new handle has nothing cached: the blob is read from its loose file, inflated.
        let again = git2::Repository::open_bare(dir.path()).unwrap();
        assert_eq!(again.find_blob(id).unwrap().content(), &content[..]);
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(!maps.contains("libz.so"), "a system zlib is loaded:\n{maps}");
    }

    #[test]
    fn a_runs_commits_reach_the_branch_in_one_update_and_never_over_a_branch_moved_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let git = settings(dir.path());
        ensure_bare_remote(Path::new(&git.remote), &git.branch).unwrap();
        let wc = WorkingCopy::open(&git).unwrap();
        let repo = wc.repository();
        let branch = format!("refs/heads/{}", git.branch);
        let sig = Signature::now("test", "test@example.org").unwrap();
        let empty = repo
            .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
            .unwrap();
        let on_branch = || repo.refname_to_id(&branch).ok();

        // Two commits, as two domains make them: each on the one before, the branch unborn.
        let a = wc.write_commit(true, &sig, &sig, "a", &empty, &[]).unwrap();
        let a_commit = repo.find_commit(a).unwrap();
        let b = wc.write_commit(true, &sig, &sig, "b", &empty, &[&a_commit]).unwrap();
        assert_eq!(wc.head().unwrap(), Some(b), "the working copy's head is its tip");
        assert_eq!(on_branch(), None, "the branch moves only when published");
        wc.publish_commits().unwrap();
        assert_eq!(on_branch(), Some(b));
        assert_eq!(repo.reflog(&branch).unwrap().len(), 1, "one update for both");

        // A third, while someone else moves the branch: theirs is kept, ours stays off it.
        let b_commit = repo.find_commit(b).unwrap();
        let c = wc.write_commit(true, &sig, &sig, "c", &empty, &[&b_commit]).unwrap();
        repo.reference(&branch, a, true, "someone else").unwrap();
        assert!(wc.publish_commits().is_err());
        assert_eq!(on_branch(), Some(a), "a branch moved meanwhile is not overwritten");
        assert_eq!(wc.head().unwrap(), Some(a), "the tip is dropped with the failure");
        assert_ne!(on_branch(), Some(c));
    }
}
