//! A rollback's files: the staging copy for validation, the snapshot set aside, and the
//! atomic writes to the live files.

use std::os::unix::fs::MetadataExt;

use super::*;
use crate::fs::{LiveWrite, write_live_atomically};
use crate::metadata::{FileMeta, FileType, GIT_SYMLINK, Names, Privilege};

/// The live path of a repository path: under the source root, its directory inside the
/// root; nothing is ever written outside it. The path itself is not followed when it is a
/// symlink (a link is a file of the backup), unless `follow` (a commit made before links
/// were kept held the content of the link's target, and was read through it).
pub(super) fn live_path(root: &Path, rel: &RepoPath, follow: bool) -> Result<PathBuf, String> {
    let root = root.canonicalize().map_err(|e| format!("source root: {e}"))?;
    let abs = root.join(rel.as_str());
    if follow
        && let Ok(meta) = std::fs::symlink_metadata(&abs)
        && meta.file_type().is_symlink()
    {
        let target = abs.canonicalize().map_err(|_| format!("{rel}: a dangling symlink"))?;
        return if target.starts_with(&root) {
            Ok(target)
        } else {
            Err(format!("{rel}: the symlink leads outside the source root"))
        };
    }
    let mut ancestor = abs.parent();
    while let Some(dir) = ancestor {
        if dir.exists() {
            let canon = dir.canonicalize().map_err(|e| format!("{rel}: {e}"))?;
            return if canon.starts_with(&root) {
                Ok(abs)
            } else {
                Err(format!("{rel}: leads outside the source root"))
            };
        }
        ancestor = dir.parent();
    }
    Err(format!("{rel}: no existing parent directory"))
}

/// A live path as it is now: its content (a link's target text), git mode and metadata.
#[derive(Debug, Clone)]
pub(super) struct Live {
    pub content: Vec<u8>,
    pub mode: u32,
    pub meta: FileMeta,
}

impl Live {
    /// Whether it is already the target's state.
    pub fn is(&self, content: &[u8], mode: u32, meta: Option<&FileMeta>) -> bool {
        self.content == content && self.mode == mode && meta.is_none_or(|m| m.same_access(&self.meta))
    }
}

pub(super) fn read_live(path: &Path, names: &Names) -> Option<Live> {
    let st = std::fs::symlink_metadata(path).ok()?;
    let meta = FileMeta::of(&st, names);
    if st.file_type().is_symlink() {
        use std::os::unix::ffi::OsStrExt;
        let target = std::fs::read_link(path).ok()?;
        return Some(Live {
            content: target.as_os_str().as_bytes().to_vec(),
            mode: GIT_SYMLINK,
            meta,
        });
    }
    if !st.is_file() {
        return None;
    }
    Some(Live {
        content: std::fs::read(path).ok()?,
        mode: repo::git_mode(st.permissions().mode() & 0o111 != 0),
        meta,
    })
}

pub(super) fn unix_mode(git_mode: u32) -> u32 {
    if git_mode & 0o111 != 0 { 0o755 } else { 0o644 }
}

/// The owner the server's own files in `dir` get: its user, and the directory's group.
fn server_owner(privilege: &Privilege, dir: &Path) -> (u32, u32) {
    (privilege.euid, std::fs::metadata(dir).map(|d| d.gid()).unwrap_or(0))
}

/// Writes one domain's target files into `dir` (the server's alone, 0700): links as
/// links, modes, owners and groups as at the target, so a checker that drops to the
/// service's user reads them as the service would (FreeRADIUS reads its key as freerad).
/// An owner the server cannot give is replaced by the server's own.
pub(super) fn stage_files(dir: &Path, files: &[TargetFile], domain: Domain) -> Result<(), String> {
    let privilege = Privilege::current();
    let (uid, gid) = server_owner(&privilege, dir);
    let metas: Vec<Option<FileMeta>> = files
        .iter()
        .map(|f| {
            f.meta.as_ref().map(|m| {
                if privilege.can_own(m.uid, m.gid) {
                    m.clone()
                } else {
                    FileMeta { uid, gid, ..m.clone() }
                }
            })
        })
        .collect();
    let items: Vec<LiveWrite<'_>> = files
        .iter()
        .zip(&metas)
        .filter(|(f, _)| f.domain == domain)
        .map(|(f, meta)| LiveWrite {
            path: dir.join(f.path.as_str()),
            content: f.content.as_slice(),
            unix_mode: unix_mode(f.mode),
            meta: meta.as_ref(),
        })
        .collect();
    write_live_atomically(&items).map_err(|(p, e)| format!("staging {}: {e}", p.display()))
}

/// Sets the live state of every path the rollback touches aside, then marks the snapshot
/// complete (the last write). A live file is hard-linked into the snapshot when it can be
/// (same filesystem, a regular file): applying replaces live files by renaming new ones
/// over them, so the linked inode keeps the old content, mode and owner untouched, and a
/// link costs no copy. Otherwise its content is copied. A symlink is saved as a symlink.
/// The `meta` file records every saved path's type, mode and owner (`metadata` format).
pub(super) fn write_snapshot(dir: &Path, root: &Path, paths: &[(RepoPath, bool)]) -> Result<usize, String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("files")).map_err(|e| format!("snapshot {}: {e}", dir.display()))?;
    let names = Names::load();
    let mut manifest = String::new();
    let mut metas = crate::metadata::MetaMap::new();
    let mut copies: Vec<(PathBuf, Live)> = Vec::new();
    let mut linked: Vec<PathBuf> = Vec::new();
    for (rel, follow) in paths {
        let live = live_path(root, rel, *follow)?;
        let saved = dir.join("files").join(rel.as_str());
        let st = std::fs::symlink_metadata(&live);
        if st.as_ref().is_ok_and(|m| m.file_type().is_file()) {
            let parent = saved.parent().unwrap_or(dir);
            std::fs::create_dir_all(parent).map_err(|e| format!("snapshot {}: {e}", parent.display()))?;
            if std::fs::hard_link(&live, &saved).is_ok() {
                let st = std::fs::symlink_metadata(&saved).map_err(|e| format!("snapshot {}: {e}", saved.display()))?;
                let meta = FileMeta::of(&st, &names);
                manifest.push_str(&format!("present {:o} {rel}\n", repo::git_mode(meta.mode & 0o111 != 0)));
                metas.insert(rel.clone(), meta);
                linked.push(saved);
                continue;
            }
        }
        match read_live(&live, &names) {
            Some(l) => {
                manifest.push_str(&format!("present {:o} {rel}\n", l.mode));
                metas.insert(rel.clone(), l.meta.clone());
                copies.push((saved, l));
            }
            None => manifest.push_str(&format!("absent - {rel}\n")),
        }
    }
    let saved = manifest.lines().filter(|l| l.starts_with("present ")).count();
    // Every link, copy and the manifest are durable before the marker says so. The links
    // (and the linked files' data, if not on disk yet) are flushed by one `syncfs` of the
    // snapshot's filesystem, which a hard link shares with its file: one journal commit
    // for them all, where a `fsync` per file paid one each. Copies are flushed together,
    // readable by the server alone (their owner and mode are in `meta`).
    if !linked.is_empty() {
        std::fs::File::open(dir)
            .and_then(|d| rustix::fs::syncfs(&d).map_err(std::io::Error::from))
            .map_err(|e| format!("snapshot {}: {e}", dir.display()))?;
    }
    if !copies.is_empty() {
        let (uid, gid) = server_owner(&Privilege::current(), dir);
        let private: Vec<Option<FileMeta>> = copies
            .iter()
            .map(|(_, l)| {
                (l.meta.kind == FileType::Symlink).then(|| FileMeta {
                    uid,
                    gid,
                    ..l.meta.clone()
                })
            })
            .collect();
        let items: Vec<LiveWrite<'_>> = copies
            .iter()
            .zip(&private)
            .map(|((p, l), meta)| LiveWrite {
                path: p.clone(),
                content: l.content.as_slice(),
                unix_mode: 0o600,
                meta: meta.as_ref(),
            })
            .collect();
        write_live_atomically(&items).map_err(|(p, e)| format!("snapshot {}: {e}", p.display()))?;
    }
    write_atomically(&dir.join("meta"), crate::metadata::render(&metas).as_bytes(), 0o600)
        .map_err(|e| format!("snapshot metadata: {e}"))?;
    write_atomically(&dir.join("manifest"), manifest.as_bytes(), 0o600)
        .map_err(|e| format!("snapshot manifest: {e}"))?;
    write_atomically(&dir.join("complete"), b"", 0o600).map_err(|e| format!("snapshot marker: {e}"))?;
    Ok(saved)
}

/// The snapshot of what applying will change: the target files whose live version differs
/// from the target now, and the removals. Returns how many files were saved and the paths
/// covered; `apply` writes nothing outside them.
pub(super) fn snapshot_changing(
    dir: &Path,
    root: &Path,
    files: &[TargetFile],
    removals: &[(Domain, RepoPath)],
) -> Result<(usize, std::collections::HashSet<RepoPath>), String> {
    let names = Names::load();
    let mut paths: Vec<(RepoPath, bool)> = Vec::new();
    for f in files {
        // Each path as applying will see it: a link itself, or (a target from before
        // links were kept) the file it leads to.
        let live = live_path(root, &f.path, f.meta.is_none())?;
        if !read_live(&live, &names).is_some_and(|l| l.is(&f.content, f.mode, f.meta.as_ref())) {
            paths.push((f.path.clone(), f.meta.is_none()));
        }
    }
    paths.extend(removals.iter().map(|(_, p)| (p.clone(), false)));
    let saved = write_snapshot(dir, root, &paths)?;
    Ok((saved, paths.into_iter().map(|(p, _)| p).collect()))
}

/// Puts a snapshot back: saved files rewritten atomically with their owner, group and
/// mode (links as links), files that did not exist removed.
pub(super) fn restore_snapshot(dir: &Path, root: &Path) -> Result<usize, String> {
    if !dir.join("complete").exists() {
        return Err(format!("the snapshot in {} is incomplete", dir.display()));
    }
    let manifest = std::fs::read_to_string(dir.join("manifest")).map_err(|e| format!("snapshot manifest: {e}"))?;
    // A snapshot written before metadata was kept has no `meta`: modes from the manifest.
    let metas = crate::metadata::parse(&std::fs::read_to_string(dir.join("meta")).unwrap_or_default());
    let names = Names::load();
    let mut errors = Vec::new();
    let mut writes: Vec<(PathBuf, Vec<u8>, u32, Option<FileMeta>)> = Vec::new();
    let mut removals = Vec::new();
    for line in manifest.lines() {
        let mut parts = line.splitn(3, ' ');
        let (Some(kind), Some(mode), Some(rel)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(rel) = rel.parse::<RepoPath>() else { continue };
        let meta = metas.get(&rel).cloned();
        let live = match live_path(root, &rel, meta.is_none()) {
            Ok(l) => l,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if kind == "present" {
            let mode = u32::from_str_radix(mode, 8).unwrap_or(0o100644);
            match read_live(&dir.join("files").join(rel.as_str()), &names) {
                Some(saved) => writes.push((live, saved.content, unix_mode(mode), meta)),
                None => errors.push(format!("{rel}: missing from the snapshot")),
            }
        } else {
            removals.push((rel, live));
        }
    }
    let mut restored = 0;
    let items: Vec<LiveWrite<'_>> = writes
        .iter()
        .map(|(p, c, m, meta)| LiveWrite {
            path: p.clone(),
            content: c.as_slice(),
            unix_mode: *m,
            meta: meta.as_ref(),
        })
        .collect();
    if write_live_atomically(&items).is_ok() {
        restored += items.len();
    } else {
        // Put back as many as possible, one by one, and name each that fails.
        for item in &items {
            match write_live_atomically(std::slice::from_ref(item)) {
                Ok(()) => restored += 1,
                Err((p, e)) => errors.push(format!("{}: {e}", p.display())),
            }
        }
    }
    for (rel, live) in removals {
        match std::fs::remove_file(&live) {
            Ok(()) => restored += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => restored += 1,
            Err(e) => errors.push(format!("{rel}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(restored)
    } else {
        Err(errors.join("; "))
    }
}

/// Applies the target: every file that differs written atomically with its owner, group
/// and mode set before the rename (links made as links), extras removed.
pub(super) fn apply(
    root: &Path,
    files: &[TargetFile],
    removals: &[(Domain, RepoPath)],
    saved: &std::collections::HashSet<RepoPath>,
) -> Result<(usize, usize), String> {
    let names = Names::load();
    let mut items: Vec<LiveWrite<'_>> = Vec::new();
    for f in files {
        let live = live_path(root, &f.path, f.meta.is_none())?;
        if read_live(&live, &names).is_some_and(|l| l.is(&f.content, f.mode, f.meta.as_ref())) {
            continue;
        }
        if !saved.contains(&f.path) {
            // Changed by someone else since the snapshot: it holds no copy to revert to.
            return Err(format!(
                "{} changed after the snapshot was taken; nothing was written",
                f.path
            ));
        }
        items.push(LiveWrite {
            path: live,
            content: f.content.as_slice(),
            unix_mode: unix_mode(f.mode),
            meta: f.meta.as_ref(),
        });
    }
    let written = items.len();
    write_live_atomically(&items).map_err(|(p, e)| format!("writing {}: {e}", p.display()))?;
    let mut removed = 0;
    for (_, rel) in removals {
        let live = live_path(root, rel, false)?;
        match std::fs::remove_file(&live) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("removing {rel}: {e}")),
        }
    }
    Ok((written, removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_restores_files_and_removes_new_ones() {
        let root = tempfile::tempdir().unwrap();
        let snap = tempfile::tempdir().unwrap();
        let p = |s: &str| s.parse::<RepoPath>().unwrap();
        std::fs::write(root.path().join("a.conf"), "old").unwrap();
        std::os::unix::fs::symlink("a.conf", root.path().join("l.conf")).unwrap();
        std::fs::set_permissions(root.path().join("a.conf"), std::fs::Permissions::from_mode(0o4640)).unwrap();
        let paths = [(p("a.conf"), false), (p("b.conf"), false), (p("l.conf"), false)];
        write_snapshot(&snap.path().join("s"), root.path(), &paths).unwrap();
        // As `apply` replaces a file: a new one renamed over it.
        write_atomically(&root.path().join("a.conf"), b"new", 0o644).unwrap();
        std::fs::write(root.path().join("b.conf"), "created").unwrap();
        std::fs::remove_file(root.path().join("l.conf")).unwrap();
        std::fs::write(root.path().join("l.conf"), "a copy").unwrap();
        restore_snapshot(&snap.path().join("s"), root.path()).unwrap();
        assert_eq!(std::fs::read_to_string(root.path().join("a.conf")).unwrap(), "old");
        let a = std::fs::symlink_metadata(root.path().join("a.conf")).unwrap();
        assert_eq!(a.permissions().mode() & 0o7777, 0o4640);
        assert!(!root.path().join("b.conf").exists());
        assert_eq!(
            std::fs::read_link(root.path().join("l.conf")).unwrap(),
            Path::new("a.conf")
        );
    }

    #[test]
    fn only_the_files_that_will_change_are_set_aside_and_nothing_else_is_written() {
        let root = tempfile::tempdir().unwrap();
        let snap = tempfile::tempdir().unwrap();
        let p = |s: &str| s.parse::<RepoPath>().unwrap();
        std::fs::write(root.path().join("same.conf"), "same").unwrap();
        std::fs::write(root.path().join("old.conf"), "old").unwrap();
        std::fs::set_permissions(root.path().join("same.conf"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(root.path().join("old.conf"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let target = |path: &str, content: &str| TargetFile {
            domain: Domain::Dns,
            path: p(path),
            content: content.as_bytes().to_vec(),
            mode: 0o100644,
            meta: None,
        };
        let files = [target("same.conf", "same"), target("old.conf", "new")];
        let (saved, covered) = snapshot_changing(&snap.path().join("s"), root.path(), &files, &[]).unwrap();
        assert_eq!((saved, covered.len()), (1, 1));
        assert!(covered.contains(&p("old.conf")));
        // Someone edits the unchanged file between the snapshot and the writes: applying
        // refuses before writing anything, since the snapshot could not put it back.
        std::fs::write(root.path().join("same.conf"), "edited meanwhile").unwrap();
        let refused = apply(root.path(), &files, &[], &covered).unwrap_err();
        assert!(refused.contains("same.conf changed after the snapshot"), "{refused}");
        assert_eq!(std::fs::read_to_string(root.path().join("old.conf")).unwrap(), "old");
        std::fs::write(root.path().join("same.conf"), "same").unwrap();
        assert_eq!(apply(root.path(), &files, &[], &covered).unwrap(), (1, 0));
        assert_eq!(std::fs::read_to_string(root.path().join("old.conf")).unwrap(), "new");
        restore_snapshot(&snap.path().join("s"), root.path()).unwrap();
        assert_eq!(std::fs::read_to_string(root.path().join("old.conf")).unwrap(), "old");
    }

    #[test]
    fn live_paths_never_leave_the_root() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("config")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("config/out")).unwrap();
        std::fs::write(root.path().join("config/real.conf"), "x").unwrap();
        std::os::unix::fs::symlink(
            root.path().join("config/real.conf"),
            root.path().join("config/link.conf"),
        )
        .unwrap();
        let p = |s: &str| s.parse::<RepoPath>().unwrap();
        assert!(live_path(root.path(), &p("config/out/evil.conf"), false).is_err());
        assert!(live_path(root.path(), &p("config/new/dir/file.conf"), false).is_ok());
        // A link is a file of the backup: never followed...
        let link = live_path(root.path(), &p("config/link.conf"), false).unwrap();
        assert!(link.ends_with("config/link.conf"), "{}", link.display());
        // ...unless the commit predates links, when it was read through.
        let link = live_path(root.path(), &p("config/link.conf"), true).unwrap();
        assert!(link.ends_with("config/real.conf"), "{}", link.display());
    }
}
