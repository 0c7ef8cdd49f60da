//! Finding a domain's files under the source root: glob expansion (`*`, `?`, `[..]`,
//! `**`), sorted, never leaving the source root (no `..`, no directory symlink escaping
//! it). A symlink a pattern matches is a file of its own: kept as a link with its target
//! text, never followed, wherever it points.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

use crate::domain::RepoPath;
use crate::metadata::{FileMeta, Names};

/// Compiles a pattern the way the engine matches it: `*` and `?` stay within one
/// path component, `**` spans any depth.
pub fn compile_glob(pattern: &str) -> Result<GlobMatcher, globset::Error> {
    Ok(GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()?
        .compile_matcher())
}

/// A file found for a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Its path relative to the source root.
    pub path: RepoPath,
    /// Where to read it.
    pub abs: PathBuf,
    /// Whether any execute bit is set (git mode 100755).
    pub executable: bool,
    /// Its metadata when it was found (`lstat`): what the stat cache compares, so a run
    /// stats each file once.
    pub stat: crate::statcache::FileStat,
    /// Type, full mode, owner and group.
    pub meta: FileMeta,
    /// A symlink's target text.
    pub link: Option<String>,
}

impl SourceFile {
    /// Git's mode for it: a link, or a file executable or not.
    pub fn git_mode(&self) -> u32 {
        if self.link.is_some() {
            crate::metadata::GIT_SYMLINK
        } else if self.executable {
            0o100755
        } else {
            0o100644
        }
    }
}

/// What the globs of one domain found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Files found, sorted by path, each once.
    pub files: Vec<SourceFile>,
    /// Patterns that matched no file.
    pub unmatched: Vec<String>,
    /// Patterns whose directories could not be fully read: a file they used to match
    /// and that was not found may still exist, so it must not be taken as deleted.
    pub incomplete: Vec<String>,
    /// Files skipped and directories that could not be read, with the reason.
    pub warnings: Vec<String>,
}

impl Scan {
    /// Whether `path` could have been missed because a pattern matching it was incomplete.
    pub fn may_have_missed(&self, path: &RepoPath) -> bool {
        self.incomplete
            .iter()
            .any(|p| compile_glob(p).map(|m| m.is_match(path.as_str())).unwrap_or(true))
    }
}

fn is_meta(component: &str) -> bool {
    component.contains(['*', '?', '[', '{'])
}

/// Expands `patterns` under `root`.
pub fn scan(root: &Path, patterns: &[String]) -> std::io::Result<Scan> {
    let root = root.canonicalize()?;
    let names = Names::load();
    // In the order found; sorted by path at the end, the first pattern's file kept.
    let mut found: Vec<SourceFile> = Vec::new();
    let mut out = Scan::default();

    for pattern in patterns {
        let matcher = match compile_glob(pattern) {
            Ok(m) => m,
            Err(e) => {
                out.warnings
                    .push(format!("pattern {pattern:?} is not a valid glob: {e}"));
                out.unmatched.push(pattern.clone());
                continue;
            }
        };
        let components: Vec<&str> = pattern.split('/').collect();
        let literal = components.iter().take_while(|c| !is_meta(c)).count();
        let before = found.len();
        let mut complete = true;

        if literal == components.len() {
            // No wildcard: one path, checked directly; its directory must be inside the
            // root (the path may pass through a directory symlink; a walk never does).
            let rel = pattern.as_str();
            let abs = root.join(rel);
            let inside = abs.parent().is_none_or(|d| match d.canonicalize() {
                Ok(d) => d.starts_with(&root),
                Err(_) => true,
            });
            if !inside {
                out.warnings
                    .push(format!("{rel}: skipped, it leads outside the source root"));
                continue;
            }
            complete &= keep(consider(&names, abs, rel), &mut found, &mut out.warnings);
        } else {
            let prefix = components[..literal].join("/");
            let start = if prefix.is_empty() {
                root.clone()
            } else {
                root.join(&prefix)
            };
            let depth = if pattern.contains("**") {
                usize::MAX
            } else {
                components.len() - literal
            };
            match start.canonicalize() {
                Ok(canon) if !canon.starts_with(&root) => {
                    out.warnings
                        .push(format!("{prefix}: skipped, it leads outside the source root"));
                }
                Ok(_) => walk(&start, depth, &mut |step| {
                    let entry = match step {
                        Step::Entry(e) => e,
                        Step::Unreadable(dir, e) => {
                            out.warnings
                                .push(format!("pattern {pattern:?}: cannot read {}: {e}", dir.display()));
                            complete = false;
                            return;
                        }
                    };
                    let abs = entry.path();
                    let Some(rel) = relative(&abs, &root) else {
                        return;
                    };
                    let Ok(rel) = std::str::from_utf8(rel) else {
                        out.warnings.push(format!(
                            "{}: skipped, the name is not UTF-8",
                            String::from_utf8_lossy(rel)
                        ));
                        return;
                    };
                    if !matcher.is_match(rel) {
                        return;
                    }
                    let rel = rel.to_owned();
                    complete &= keep(consider_entry(&names, entry, abs, &rel), &mut found, &mut out.warnings);
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    out.warnings.push(format!("{prefix}: cannot read: {e}"));
                    complete = false;
                }
            }
        }
        if !complete {
            out.incomplete.push(pattern.clone());
        }
        if found.len() == before && !patterns_already_matched(&found, &matcher) && complete {
            out.unmatched.push(pattern.clone());
        }
    }
    // A stable sort: of one path found twice, the first pattern's stays first.
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found.dedup_by(|later, first| later.path == first.path);
    out.files = found;
    Ok(out)
}

/// `abs` relative to `root`, which it starts with (the walk joined it): byte for byte,
/// not component by component.
fn relative<'a>(abs: &'a Path, root: &Path) -> Option<&'a [u8]> {
    use std::os::unix::ffi::OsStrExt;
    let (a, r) = (abs.as_os_str().as_bytes(), root.as_os_str().as_bytes());
    let rest = a.strip_prefix(r)?;
    if r.ends_with(b"/") {
        Some(rest)
    } else {
        rest.strip_prefix(b"/")
    }
}

/// A pattern whose files were all found by an earlier pattern still matched.
fn patterns_already_matched(found: &[SourceFile], matcher: &GlobMatcher) -> bool {
    found.iter().any(|f| matcher.is_match(f.path.as_str()))
}

enum Skip {
    /// Skip the file and say why.
    Warn(String),
    /// The file exists but cannot be examined: it must not count as deleted.
    Unreadable(String),
}

/// Takes what `consider` made of one path: the file into `found` (the first pattern to
/// match a path keeps it, once `scan` sorts them), a warning into `warnings`. False when
/// the path exists but could not be examined, so the pattern's list is incomplete.
fn keep(considered: Result<Option<SourceFile>, Skip>, found: &mut Vec<SourceFile>, warnings: &mut Vec<String>) -> bool {
    match considered {
        Ok(Some(file)) => {
            found.push(file);
            true
        }
        Ok(None) => true,
        Err(Skip::Warn(w)) => {
            warnings.push(w);
            true
        }
        Err(Skip::Unreadable(w)) => {
            warnings.push(w);
            false
        }
    }
}

/// One step of [`walk`].
enum Step<'a> {
    /// An entry that is not a directory.
    Entry(&'a std::fs::DirEntry),
    /// A directory, or one of its entries, that could not be read.
    Unreadable(&'a Path, std::io::Error),
}

/// Visits every entry under `dir` that is not a directory, down to `depth` levels (1: the
/// entries of `dir` only), each directory's entries in name order and before the next
/// entry's: what `walkdir` gave, sorted by file name, with `min_depth(1)`. A symlink is an
/// entry, never followed, and so is `dir` itself when it is one: nothing is visited.
///
/// Each entry's metadata is read relative to its directory's descriptor
/// ([`std::fs::DirEntry::metadata`] is a `statx` on it), not by walking its full path
/// again from `/`: on a no-change run of thousands of files, that path walk was most of
/// the time spent in `statx`.
fn walk(dir: &Path, depth: usize, visit: &mut dyn FnMut(Step<'_>)) {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => walk_dir(dir, depth, visit),
        Ok(_) => {}
        Err(e) => visit(Step::Unreadable(dir, e)),
    }
}

fn walk_dir(dir: &Path, depth: usize, visit: &mut dyn FnMut(Step<'_>)) {
    if depth == 0 {
        return;
    }
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) => return visit(Step::Unreadable(dir, e)),
    };
    let mut entries = Vec::new();
    for entry in read {
        match entry.and_then(|e| Ok((e.file_type()?, e.file_name(), e))) {
            Ok(e) => entries.push(e),
            Err(e) => visit(Step::Unreadable(dir, e)),
        }
    }
    // Each name taken once: a sort by a key made anew for every comparison allocated it
    // n log n times.
    entries.sort_unstable_by(|a, b| a.1.cmp(&b.1));
    for (kind, _, entry) in &entries {
        if kind.is_dir() {
            walk_dir(&entry.path(), depth - 1, visit);
        } else {
            visit(Step::Entry(entry));
        }
    }
}

/// [`consider`] for an entry a walk found: its metadata read relative to its directory.
fn consider_entry(
    names: &Names,
    entry: &std::fs::DirEntry,
    abs: PathBuf,
    rel: &str,
) -> Result<Option<SourceFile>, Skip> {
    match entry.metadata() {
        Ok(meta) => consider_meta(names, meta, abs, rel),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Skip::Unreadable(format!("{rel}: cannot read: {e}"))),
    }
}

/// Checks one candidate: a regular file, or a symlink (kept as a link).
fn consider(names: &Names, abs: PathBuf, rel: &str) -> Result<Option<SourceFile>, Skip> {
    match std::fs::symlink_metadata(&abs) {
        Ok(meta) => consider_meta(names, meta, abs, rel),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Skip::Unreadable(format!("{rel}: cannot read: {e}"))),
    }
}

/// [`consider`] with the candidate's metadata (`lstat`) already read.
fn consider_meta(names: &Names, meta: std::fs::Metadata, abs: PathBuf, rel: &str) -> Result<Option<SourceFile>, Skip> {
    let link = if meta.file_type().is_symlink() {
        match std::fs::read_link(&abs) {
            Ok(t) => match t.into_os_string().into_string() {
                Ok(t) => Some(t),
                Err(_) => return Err(Skip::Warn(format!("{rel}: skipped, the link's target is not UTF-8"))),
            },
            Err(e) => return Err(Skip::Unreadable(format!("{rel}: cannot read the link: {e}"))),
        }
    } else if meta.is_file() {
        None
    } else {
        return Ok(None);
    };
    let path: RepoPath = rel
        .parse()
        .map_err(|e: crate::domain::BadRepoPath| Skip::Warn(e.to_string()))?;
    if path.is_metadata() {
        return Err(Skip::Warn(format!(
            "{rel}: skipped, the name is reserved for the backup's manifests"
        )));
    }
    Ok(Some(SourceFile {
        path,
        abs,
        executable: link.is_none() && meta.permissions().mode() & 0o111 != 0,
        stat: crate::statcache::FileStat::of(&meta),
        meta: FileMeta::of(&meta, names),
        link,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs::create_dir_all(r.join("scripts/gateway")).unwrap();
        fs::create_dir_all(r.join("config/unbound/unbound.conf.d/deep")).unwrap();
        fs::write(r.join("scripts/gateway/b.nft"), "b").unwrap();
        fs::write(r.join("scripts/gateway/a.nft"), "a").unwrap();
        fs::write(r.join("scripts/gateway/notes.txt"), "n").unwrap();
        fs::write(r.join("config/unbound/unbound.conf"), "u").unwrap();
        fs::write(r.join("config/unbound/unbound.conf.d/sinkhole.conf"), "s").unwrap();
        fs::write(r.join("config/unbound/unbound.conf.d/deep/x.conf"), "x").unwrap();
        dir
    }

    fn paths(s: &Scan) -> Vec<&str> {
        s.files.iter().map(|f| f.path.as_str()).collect()
    }

    #[test]
    fn star_stays_in_one_directory_and_results_are_sorted() {
        let t = tree();
        let s = scan(
            t.path(),
            &["scripts/gateway/*.nft".into(), "config/unbound/unbound.conf.d/*".into()],
        )
        .unwrap();
        assert_eq!(
            paths(&s),
            [
                "config/unbound/unbound.conf.d/sinkhole.conf",
                "scripts/gateway/a.nft",
                "scripts/gateway/b.nft"
            ]
        );
        assert!(s.unmatched.is_empty());
    }

    #[test]
    fn a_file_matched_by_several_patterns_is_listed_once_and_no_such_pattern_is_unmatched() {
        let t = tree();
        let s = scan(
            t.path(),
            &[
                "scripts/gateway/b.nft".into(),
                "scripts/**/*.nft".into(),
                "config/unbound/unbound.conf".into(),
                "scripts/gateway/*.nft".into(),
                "scripts/gateway/a.nft".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            paths(&s),
            [
                "config/unbound/unbound.conf",
                "scripts/gateway/a.nft",
                "scripts/gateway/b.nft"
            ]
        );
        assert!(s.unmatched.is_empty(), "{:?}", s.unmatched);
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }

    #[test]
    fn double_star_spans_any_depth_and_brackets_work() {
        let t = tree();
        let s = scan(t.path(), &["config/**/*.conf".into(), "scripts/gateway/[a]?nft".into()]).unwrap();
        assert_eq!(
            paths(&s),
            [
                "config/unbound/unbound.conf",
                "config/unbound/unbound.conf.d/deep/x.conf",
                "config/unbound/unbound.conf.d/sinkhole.conf",
                "scripts/gateway/a.nft"
            ]
        );
    }

    #[test]
    fn unmatched_patterns_are_reported_not_fatal() {
        let t = tree();
        let s = scan(
            t.path(),
            &[
                "config/kea/*.conf".into(),
                "config/unbound/unbound.conf".into(),
                "nope.txt".into(),
            ],
        )
        .unwrap();
        assert_eq!(paths(&s), ["config/unbound/unbound.conf"]);
        assert_eq!(s.unmatched, ["config/kea/*.conf", "nope.txt"]);
    }

    #[test]
    fn symlinks_are_kept_as_links_and_directories_out_of_the_root_are_skipped() {
        let t = tree();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), t.path().join("scripts/gateway/evil.nft")).unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("config/linked")).unwrap();
        std::os::unix::fs::symlink(
            t.path().join("scripts/gateway/a.nft"),
            t.path().join("scripts/gateway/ok.nft"),
        )
        .unwrap();
        let s = scan(t.path(), &["scripts/gateway/*.nft".into(), "config/linked/*".into()]).unwrap();
        assert_eq!(
            paths(&s),
            [
                "scripts/gateway/a.nft",
                "scripts/gateway/b.nft",
                "scripts/gateway/evil.nft",
                "scripts/gateway/ok.nft"
            ]
        );
        // A link is a link wherever it points: its target text, never its target's bytes.
        let evil = &s.files[2];
        assert_eq!(evil.link.as_deref(), outside.path().join("secret").to_str());
        assert_eq!(evil.git_mode(), crate::metadata::GIT_SYMLINK);
        assert_eq!(evil.meta.kind, crate::metadata::FileType::Symlink);
        assert!(s.files[0].link.is_none());
        assert!(
            s.warnings.iter().any(|w| w.contains("config/linked")),
            "{:?}",
            s.warnings
        );
    }

    #[test]
    fn the_walk_visits_what_walkdir_did_in_the_same_order() {
        let t = tree();
        let r = t.path();
        fs::create_dir_all(r.join("config/kea/a/b/c")).unwrap();
        fs::create_dir_all(r.join("config/kea/empty")).unwrap();
        for (i, f) in [
            "config/kea/z.json",
            "config/kea/a/1.json",
            "config/kea/a/b/2.json",
            "config/kea/a/b/c/3.json",
        ]
        .iter()
        .enumerate()
        {
            fs::write(r.join(f), i.to_string()).unwrap();
        }
        std::os::unix::fs::symlink(r.join("config/kea/a"), r.join("config/kea/dirlink")).unwrap();
        std::os::unix::fs::symlink("z.json", r.join("config/kea/filelink")).unwrap();
        std::os::unix::fs::symlink("missing", r.join("config/kea/dangling")).unwrap();
        std::os::unix::fs::symlink(r.join("config/kea"), r.join("config/kealink")).unwrap();
        for start in ["config", "config/kea", "config/kealink", "config/kea/z.json", "nothing"] {
            for depth in [1, 2, 3, 4, usize::MAX] {
                let start = r.join(start);
                let expected: Vec<PathBuf> = walkdir::WalkDir::new(&start)
                    .follow_links(false)
                    .follow_root_links(false)
                    .min_depth(1)
                    .max_depth(depth)
                    .sort_by_file_name()
                    .into_iter()
                    .filter_map(Result::ok)
                    .filter(|e| !e.file_type().is_dir())
                    .map(|e| e.path().to_path_buf())
                    .collect();
                let mut got = Vec::new();
                walk(&start, depth, &mut |step| {
                    if let Step::Entry(e) = step {
                        got.push(e.path());
                    }
                });
                assert_eq!(got, expected, "{} to depth {depth}", start.display());
            }
        }
        // A missing start is told, as walkdir told it.
        let mut unreadable = 0;
        walk(&r.join("nothing"), 3, &mut |step| {
            unreadable += usize::from(matches!(step, Step::Unreadable(..)))
        });
        assert_eq!(unreadable, 1);
    }

    #[test]
    fn executable_bit_is_seen() {
        let t = tree();
        let p = t.path().join("scripts/gateway/watch_config.sh");
        fs::write(&p, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        let s = scan(t.path(), &["scripts/gateway/*.sh".into()]).unwrap();
        assert!(s.files[0].executable);
    }
}
