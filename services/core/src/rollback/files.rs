//! A rollback's files: the staging copy for validation, the snapshot set aside, and the
//! atomic writes to the live files.

use super::*;

/// The live path of a repository path: under the source root; a symlink is followed
/// when it stays inside the root; nothing is ever written outside it.
pub(super) fn live_path(root: &Path, rel: &RepoPath) -> Result<PathBuf, String> {
    let root = root.canonicalize().map_err(|e| format!("source root: {e}"))?;
    let abs = root.join(rel.as_str());
    if let Ok(meta) = std::fs::symlink_metadata(&abs)
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

pub(super) fn read_live(path: &Path) -> Option<(Vec<u8>, u32)> {
    let content = std::fs::read(path).ok()?;
    let exec = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false);
    Some((content, repo::git_mode(exec)))
}

pub(super) fn unix_mode(git_mode: u32) -> u32 {
    if git_mode & 0o111 != 0 { 0o755 } else { 0o644 }
}

/// Writes one domain's target files into `dir`.
pub(super) fn stage_files(dir: &Path, files: &[TargetFile], domain: Domain) -> Result<(), String> {
    let items: Vec<(PathBuf, &[u8], u32)> = files
        .iter()
        .filter(|f| f.domain == domain)
        .map(|f| (dir.join(f.path.as_str()), f.content.as_slice(), unix_mode(f.mode)))
        .collect();
    write_all_atomically(&items).map_err(|(p, e)| format!("staging {}: {e}", p.display()))
}

/// Sets the live state of every path the rollback touches aside, then marks the snapshot
/// complete (the last write). A live file is hard-linked into the snapshot when it can be
/// (same filesystem, a regular file): applying replaces live files by renaming new ones
/// over them, so the linked inode keeps the old content untouched, and a link costs no
/// copy. Otherwise its content is copied.
pub(super) fn write_snapshot(dir: &Path, root: &Path, paths: &[RepoPath]) -> Result<usize, String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("files")).map_err(|e| format!("snapshot {}: {e}", dir.display()))?;
    let mut manifest = String::new();
    let mut copies: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let mut linked: Vec<PathBuf> = Vec::new();
    for rel in paths {
        let live = live_path(root, rel)?;
        let saved = dir.join("files").join(rel.as_str());
        let regular = std::fs::symlink_metadata(&live).is_ok_and(|m| m.file_type().is_file());
        if regular {
            let parent = saved.parent().unwrap_or(dir);
            std::fs::create_dir_all(parent).map_err(|e| format!("snapshot {}: {e}", parent.display()))?;
            if std::fs::hard_link(&live, &saved).is_ok() {
                let exec = std::fs::metadata(&saved).is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
                manifest.push_str(&format!("present {:o} {rel}\n", repo::git_mode(exec)));
                linked.push(saved);
                continue;
            }
        }
        match read_live(&live) {
            Some((content, mode)) => {
                manifest.push_str(&format!("present {mode:o} {rel}\n"));
                copies.push((saved, content));
            }
            None => manifest.push_str(&format!("absent - {rel}\n")),
        }
    }
    let saved = manifest.lines().filter(|l| l.starts_with("present ")).count();
    // Every link, copy and the manifest are durable before the marker says so. A linked
    // file is synced by itself: cheap when its data is already on disk (only the new link
    // is journaled, once for all), and it has to be if it is not. Copies are flushed
    // together.
    for path in &linked {
        std::fs::File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|e| format!("snapshot {}: {e}", path.display()))?;
    }
    for d in linked
        .iter()
        .filter_map(|p| p.parent())
        .collect::<std::collections::BTreeSet<_>>()
    {
        std::fs::File::open(d)
            .and_then(|f| f.sync_all())
            .map_err(|e| format!("snapshot {}: {e}", d.display()))?;
    }
    if !copies.is_empty() {
        let items: Vec<(PathBuf, &[u8], u32)> = copies.iter().map(|(p, c)| (p.clone(), c.as_slice(), 0o600)).collect();
        write_all_atomically(&items).map_err(|(p, e)| format!("snapshot {}: {e}", p.display()))?;
    }
    write_atomically(&dir.join("manifest"), manifest.as_bytes(), 0o600)
        .map_err(|e| format!("snapshot manifest: {e}"))?;
    write_atomically(&dir.join("complete"), b"", 0o600).map_err(|e| format!("snapshot marker: {e}"))?;
    Ok(saved)
}

/// Puts a snapshot back: saved files rewritten atomically, files that did not exist removed.
pub(super) fn restore_snapshot(dir: &Path, root: &Path) -> Result<usize, String> {
    if !dir.join("complete").exists() {
        return Err(format!("the snapshot in {} is incomplete", dir.display()));
    }
    let manifest = std::fs::read_to_string(dir.join("manifest")).map_err(|e| format!("snapshot manifest: {e}"))?;
    let mut errors = Vec::new();
    let mut writes: Vec<(PathBuf, Vec<u8>, u32)> = Vec::new();
    let mut removals = Vec::new();
    for line in manifest.lines() {
        let mut parts = line.splitn(3, ' ');
        let (Some(kind), Some(mode), Some(rel)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(rel) = rel.parse::<RepoPath>() else { continue };
        let live = match live_path(root, &rel) {
            Ok(l) => l,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if kind == "present" {
            let mode = u32::from_str_radix(mode, 8).unwrap_or(0o100644);
            match std::fs::read(dir.join("files").join(rel.as_str())) {
                Ok(content) => writes.push((live, content, unix_mode(mode))),
                Err(e) => errors.push(format!("{rel}: {e}")),
            }
        } else {
            removals.push((rel, live));
        }
    }
    let mut restored = 0;
    let items: Vec<(PathBuf, &[u8], u32)> = writes.iter().map(|(p, c, m)| (p.clone(), c.as_slice(), *m)).collect();
    if write_all_atomically(&items).is_ok() {
        restored += items.len();
    } else {
        // Put back as many as possible, one by one, and name each that fails.
        for (live, content, mode) in &items {
            match write_atomically(live, content, *mode) {
                Ok(()) => restored += 1,
                Err(e) => errors.push(format!("{}: {e}", live.display())),
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

/// Applies the target: every file written atomically, extras removed.
pub(super) fn apply(
    root: &Path,
    files: &[TargetFile],
    removals: &[(Domain, RepoPath)],
) -> Result<(usize, usize), String> {
    let mut items: Vec<(PathBuf, &[u8], u32)> = Vec::new();
    for f in files {
        let live = live_path(root, &f.path)?;
        if read_live(&live).is_some_and(|(c, m)| c == f.content && m == f.mode) {
            continue;
        }
        items.push((live, f.content.as_slice(), unix_mode(f.mode)));
    }
    let written = items.len();
    write_all_atomically(&items).map_err(|(p, e)| format!("writing {}: {e}", p.display()))?;
    let mut removed = 0;
    for (_, rel) in removals {
        let live = live_path(root, rel)?;
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
        write_snapshot(&snap.path().join("s"), root.path(), &[p("a.conf"), p("b.conf")]).unwrap();
        // As `apply` replaces a file: a new one renamed over it.
        write_atomically(&root.path().join("a.conf"), b"new", 0o644).unwrap();
        std::fs::write(root.path().join("b.conf"), "created").unwrap();
        restore_snapshot(&snap.path().join("s"), root.path()).unwrap();
        assert_eq!(std::fs::read_to_string(root.path().join("a.conf")).unwrap(), "old");
        assert!(!root.path().join("b.conf").exists());
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
        assert!(live_path(root.path(), &p("config/out/evil.conf")).is_err());
        assert!(live_path(root.path(), &p("config/new/dir/file.conf")).is_ok());
        let link = live_path(root.path(), &p("config/link.conf")).unwrap();
        assert!(link.ends_with("config/real.conf"), "{}", link.display());
    }
}
