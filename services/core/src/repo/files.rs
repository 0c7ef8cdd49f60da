//! Staging content into the work tree and the object database (links as links).

use super::*;
use crate::fs::{overwrite_work_file, write_link};

/// [`WorkingCopy::stage_file`] through any handle on the working copy's repository (each
/// hashing thread opens its own: a `Repository` is not shared between threads).
pub fn stage_into(repo: &Repository, path: &RepoPath, content: &[u8], mode: u32) -> Result<Staged, RepoError> {
    let workdir = repo
        .workdir()
        .ok_or_else(|| git2::Error::from_str("bare working copy"))?;
    let abs = workdir.join(path.as_str());
    // The work tree is a convenience copy, written in place; the objects are what count.
    if mode == crate::metadata::GIT_SYMLINK {
        write_link(&abs, content).map_err(io_err(format!("writing {}", abs.display())))?;
    } else {
        let unix = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
        overwrite_work_file(&abs, content, unix).map_err(io_err(format!("writing {}", abs.display())))?;
    }
    // Through the object database's write, not `Repository::blob`: libgit2's blob from a
    // buffer always streams into a new temporary file, even for an object the database
    // already holds (a file put back as it was: every file a rollback writes), and unlinks
    // it after; the write hashes first and only freshens an object it finds.
    let id = repo
        .odb()
        .and_then(|odb| odb.write(git2::ObjectType::Blob, content))
        .map_err(|e| {
            RepoError::Git(e).with_os_cause(repo.path(), content.len() as u64, || {
                format!(
                    "writing the object of {path} into {}",
                    repo.path().join("objects").display()
                )
            })
        })?;
    Ok(Staged { id, len: content.len() })
}

pub(super) fn write_work_file(workdir: &Path, rel: &str, content: &[u8], git_mode: u32) -> Result<(), RepoError> {
    let abs = workdir.join(rel);
    let unix = if git_mode & 0o111 != 0 { 0o755 } else { 0o644 };
    overwrite_work_file(&abs, content, unix).map_err(io_err(format!("writing {}", abs.display())))
}
