//! Writing files so that a crash never leaves half of one: atomic writes (a temporary
//! beside the target, owner and mode set on it, fsync, rename), many files with one flush,
//! and the facts of a filesystem that explain a failed write (read-only, full).
//!
//! Invariant: a target path only ever holds its old content or its complete new content,
//! and a new content is never readable by anyone its metadata does not allow, not even
//! for the moment between its write and its rename.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::metadata::FileMeta;

/// Makes `abs` a symlink to `target` (the link's text), replacing what is there.
pub(crate) fn write_link(abs: &Path, target: &[u8]) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let dir = abs.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    match std::fs::symlink_metadata(abs) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(abs)?,
        Ok(_) => std::fs::remove_file(abs)?,
        Err(_) => {}
    }
    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), abs)
}

/// Why writing `needed` bytes under `dir` fails, read from its filesystem: mounted
/// read-only, or less space available to us than `needed` plus 64 KiB (a failed writer
/// has removed its partial file by the time we look). `None` when neither.
pub(crate) fn filesystem_cause(dir: &Path, needed: u64) -> Option<std::io::Error> {
    let st = rustix::fs::statvfs(dir).ok()?;
    if st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
        return Some(std::io::Error::from_raw_os_error(libc::EROFS));
    }
    let available = u128::from(st.f_bavail) * u128::from(st.f_frsize);
    (available < u128::from(needed) + 64 * 1024).then(|| {
        let e = std::io::Error::from_raw_os_error(libc::ENOSPC);
        std::io::Error::new(e.kind(), format!("{e}: {available} bytes available, {needed} needed"))
    })
}

/// The space of the filesystem holding `path`, in bytes: what is available to this
/// process and the whole size. `None` when it cannot be read.
pub fn space(path: &Path) -> Option<(u64, u64)> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some((
        st.f_bavail.saturating_mul(st.f_frsize),
        st.f_blocks.saturating_mul(st.f_frsize),
    ))
}

/// Writes a file atomically: a temporary file beside it, fsync, chmod, rename.
pub fn write_atomically(abs: &Path, content: &[u8], unix_mode: u32) -> std::io::Result<()> {
    let dir = abs.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".cb-tmp-").tempfile_in(dir)?;
    tmp.write_all(content)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(unix_mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(abs).map_err(|e| e.error)?;
    Ok(())
}

/// Puts `content` at `abs` for the backup's work tree, the one place not held to this
/// module's invariant: a regular file already there (with no other link) is overwritten
/// in place, keeping its inode and blocks; a missing one is created. No temporary, no
/// rename, no flush: allocating an inode for each temporary and freeing the replaced
/// one (a discard each, on a filesystem mounted with `discard`) was a fifth of a
/// rollback's recording run. A write cut short leaves the file torn; the work tree is a
/// convenience copy, and the repository repairs it from HEAD
/// ([`crate::repo::WorkingCopy`]'s clean mark is removed before the first such write).
/// Anything else at `abs` (a link, a directory) is replaced by a new file.
pub(crate) fn overwrite_work_file(abs: &Path, content: &[u8], unix_mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let open = |options: &mut std::fs::OpenOptions| options.custom_flags(libc::O_NOFOLLOW).open(abs);
    let mut file = match std::fs::symlink_metadata(abs) {
        Ok(m) if m.is_file() && m.nlink() == 1 => {
            let f = open(std::fs::OpenOptions::new().write(true))?;
            if m.permissions().mode() & 0o7777 != unix_mode {
                f.set_permissions(std::fs::Permissions::from_mode(unix_mode))?;
            }
            f
        }
        found => {
            match found {
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(abs)?,
                Ok(_) => std::fs::remove_file(abs)?,
                Err(_) => std::fs::create_dir_all(abs.parent().unwrap_or(Path::new(".")))?,
            }
            let f = open(std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600))?;
            f.set_permissions(std::fs::Permissions::from_mode(unix_mode))?;
            f
        }
    };
    file.write_all(content)?;
    file.set_len(content.len() as u64)
}

/// One path to write: a file with its content, or, when `meta` says so, a symlink whose
/// target is the content.
#[derive(Debug, Clone)]
pub struct LiveWrite<'a> {
    /// Where.
    pub path: PathBuf,
    /// The bytes (a link's target text).
    pub content: &'a [u8],
    /// The mode when `meta` is `None`.
    pub unix_mode: u32,
    /// Type, owner, group and full mode, set on the temporary before its rename.
    pub meta: Option<&'a FileMeta>,
}

/// A temporary beside its target, removed unless renamed into place.
enum Temp {
    File(tempfile::NamedTempFile),
    Link(TempLink),
}

/// A temporary symlink's path, removed on drop unless renamed.
struct TempLink(Option<PathBuf>);

impl Drop for TempLink {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Temp {
    fn persist(self, to: &Path) -> std::io::Result<()> {
        match self {
            Temp::File(f) => f.persist(to).map(|_| ()).map_err(|e| e.error),
            Temp::Link(mut l) => {
                let from = l.0.take().unwrap_or_default();
                std::fs::rename(&from, to).inspect_err(|_| {
                    let _ = std::fs::remove_file(&from);
                })
            }
        }
    }
}

/// Writes several paths, each atomically (a temporary beside it, renamed over it),
/// with one flush for the lot instead of one per file: every content is durable (`syncfs`
/// on each filesystem involved) before the first rename, and every directory after the
/// last. On an error before the renames nothing was replaced and the temporary files are
/// gone; the error names the file. Each temporary gets its owner, group and full
/// mode (or is made a symlink) before it is renamed into place, so no one may read a new
/// file who may not read it once it is in place.
pub fn write_live_atomically(items: &[LiveWrite<'_>]) -> Result<(), (PathBuf, std::io::Error)> {
    use crate::metadata::{FileType, apply_to_file, apply_to_link};
    use std::os::unix::fs::MetadataExt;
    let mut temps = Vec::with_capacity(items.len());
    let mut filesystems: std::collections::HashMap<u64, std::fs::File> = Default::default();
    let mut dirs: std::collections::BTreeSet<PathBuf> = Default::default();
    for item in items {
        let fail = |e: std::io::Error| (item.path.clone(), e);
        let dir = item.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(fail)?;
        let temp = if let Some(meta) = item.meta.filter(|m| m.kind == FileType::Symlink) {
            use std::os::unix::ffi::OsStrExt;
            let name = dir.join(format!(".cb-tmp-{}", uuid::Uuid::new_v4().simple()));
            std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(item.content), &name).map_err(fail)?;
            let temp = Temp::Link(TempLink(Some(name.clone())));
            apply_to_link(&name, meta).map_err(fail)?;
            temp
        } else {
            let mut tmp = tempfile::Builder::new()
                .prefix(".cb-tmp-")
                .tempfile_in(dir)
                .map_err(fail)?;
            tmp.write_all(item.content).map_err(fail)?;
            match item.meta {
                Some(meta) => apply_to_file(tmp.as_file(), meta).map_err(fail)?,
                None => tmp
                    .as_file()
                    .set_permissions(std::fs::Permissions::from_mode(item.unix_mode))
                    .map_err(fail)?,
            }
            Temp::File(tmp)
        };
        let dev = std::fs::metadata(dir).map_err(fail)?.dev();
        if let std::collections::hash_map::Entry::Vacant(v) = filesystems.entry(dev) {
            v.insert(std::fs::File::open(dir).map_err(fail)?);
        }
        dirs.insert(dir.to_path_buf());
        temps.push((&item.path, temp));
    }
    for f in filesystems.values() {
        if let Err(e) = rustix::fs::syncfs(f) {
            let at = temps.first().map(|(p, _)| (*p).clone()).unwrap_or_default();
            return Err((at, e.into()));
        }
    }
    for (abs, temp) in temps {
        temp.persist(abs).map_err(|e| (abs.clone(), e))?;
    }
    for dir in dirs {
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| (dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_work_file_is_overwritten_in_place_and_a_link_or_directory_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a/b.conf");
        // Missing, with its directory: created, with the mode asked.
        overwrite_work_file(&file, b"first, longer content\n", 0o755).unwrap();
        let before = std::fs::metadata(&file).unwrap();
        assert_eq!(before.mode() & 0o7777, 0o755);
        // There: the same inode, the content shorter (the rest cut), the mode changed.
        overwrite_work_file(&file, b"second\n", 0o644).unwrap();
        let after = std::fs::metadata(&file).unwrap();
        assert_eq!(after.ino(), before.ino(), "written in place");
        assert_eq!(std::fs::read(&file).unwrap(), b"second\n");
        assert_eq!(after.mode() & 0o7777, 0o644);
        // A link is replaced, never followed; so is a file with another link.
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "untouched").unwrap();
        let link = dir.path().join("a/link.conf");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        overwrite_work_file(&link, b"a file now\n", 0o644).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
        let linked = dir.path().join("a/linked.conf");
        std::fs::hard_link(&outside, &linked).unwrap();
        overwrite_work_file(&linked, b"its own now\n", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "untouched");
        assert_eq!(std::fs::read(&linked).unwrap(), b"its own now\n");
        // A directory is replaced.
        let was_dir = dir.path().join("a/d");
        std::fs::create_dir_all(was_dir.join("inner")).unwrap();
        overwrite_work_file(&was_dir, b"x", 0o644).unwrap();
        assert_eq!(std::fs::read(&was_dir).unwrap(), b"x");
    }
}
