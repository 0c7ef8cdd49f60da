//! Finding a domain's files under the source root: glob expansion (`*`, `?`, `[..]`,
//! `**`), sorted, never leaving the source root (no `..`, no directory symlink escaping
//! it). A symlink a pattern matches is a file of its own: kept as a link with its target
//! text, never followed, wherever it points.

use std::collections::BTreeMap;
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
    let mut found: BTreeMap<RepoPath, SourceFile> = BTreeMap::new();
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
            match consider(&names, &abs, rel) {
                Ok(Some(file)) => {
                    found.entry(file.path.clone()).or_insert(file);
                }
                Ok(None) => {}
                Err(Skip::Warn(w)) => out.warnings.push(w),
                Err(Skip::Unreadable(w)) => {
                    out.warnings.push(w);
                    complete = false;
                }
            }
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
                Ok(_) => {
                    let walker = walkdir::WalkDir::new(&start)
                        .follow_links(false)
                        .follow_root_links(false)
                        .min_depth(1)
                        .max_depth(depth)
                        .sort_by_file_name();
                    for entry in walker {
                        let entry = match entry {
                            Ok(e) => e,
                            Err(e) => {
                                out.warnings.push(format!("pattern {pattern:?}: cannot read {e}"));
                                complete = false;
                                continue;
                            }
                        };
                        if entry.file_type().is_dir() {
                            continue;
                        }
                        let Ok(rel) = entry.path().strip_prefix(&root) else {
                            continue;
                        };
                        let Some(rel) = rel.to_str() else {
                            out.warnings
                                .push(format!("{}: skipped, the name is not UTF-8", rel.display()));
                            continue;
                        };
                        if !matcher.is_match(rel) {
                            continue;
                        }
                        match consider(&names, entry.path(), rel) {
                            Ok(Some(file)) => {
                                found.entry(file.path.clone()).or_insert(file);
                            }
                            Ok(None) => {}
                            Err(Skip::Warn(w)) => out.warnings.push(w),
                            Err(Skip::Unreadable(w)) => {
                                out.warnings.push(w);
                                complete = false;
                            }
                        }
                    }
                }
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
    out.files = found.into_values().collect();
    Ok(out)
}

/// A pattern whose files were all found by an earlier pattern still matched.
fn patterns_already_matched(found: &BTreeMap<RepoPath, SourceFile>, matcher: &GlobMatcher) -> bool {
    found.keys().any(|p| matcher.is_match(p.as_str()))
}

enum Skip {
    /// Skip the file and say why.
    Warn(String),
    /// The file exists but cannot be examined: it must not count as deleted.
    Unreadable(String),
}

/// Checks one candidate: a regular file, or a symlink (kept as a link).
fn consider(names: &Names, abs: &Path, rel: &str) -> Result<Option<SourceFile>, Skip> {
    let meta = match std::fs::symlink_metadata(abs) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Skip::Unreadable(format!("{rel}: cannot read: {e}"))),
    };
    let link = if meta.file_type().is_symlink() {
        match std::fs::read_link(abs) {
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
        abs: abs.to_path_buf(),
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
    fn executable_bit_is_seen() {
        let t = tree();
        let p = t.path().join("scripts/gateway/watch_config.sh");
        fs::write(&p, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        let s = scan(t.path(), &["scripts/gateway/*.sh".into()]).unwrap();
        assert!(s.files[0].executable);
    }
}
