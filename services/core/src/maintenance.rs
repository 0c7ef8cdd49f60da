//! Housekeeping of the repositories, off the run's critical path: the working copy and a
//! remote that is a local directory are compacted on a thread of its own, after a run has
//! recorded its result (git itself runs its auto-gc detached for the same reason). A
//! repack of a first backup's objects takes longer than the backup; nobody waiting for
//! the backup should wait for it.
//!
//! Invariant: housekeeping rewrites no more than the new objects ask for. Past git's own
//! limits (`gc.auto` loose objects, `gc.autoPackLimit` packs), loose objects are packed
//! (`git gc --auto`, its repack of everything turned off) and small packs are rolled up
//! geometrically (`git repack --geometric=2`, as `git maintenance` does): each pack is
//! left at least twice the objects of all smaller ones together, so a pack is rewritten
//! only when the newer ones have grown to half its size, and the number of packs stays
//! logarithmic. A full repack of the history (what `gc --auto` does past the pack limit)
//! cost seconds of CPU every 50 pushes to a local remote and grew with the history.
//!
//! Safe to overlap the next run: git repacks with concurrent writers by design (new packs
//! are written aside and renamed; only objects already packed elsewhere are removed), and
//! one `gc.pid` per repository keeps two gcs apart.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// One maintenance thread at a time; repositories asked for while it works are done
/// before it ends, so the last request is always served.
#[derive(Debug, Clone, Default)]
pub struct Maintenance {
    shared: Arc<(Mutex<State>, Condvar)>,
}

#[derive(Debug, Default)]
struct State {
    running: bool,
    pending: BTreeSet<PathBuf>,
}

impl Maintenance {
    /// Asks for housekeeping of each repository directory, on the maintenance thread.
    pub fn request(&self, dirs: impl IntoIterator<Item = PathBuf>) {
        let (lock, _) = &*self.shared;
        let mut state = lock.lock().unwrap_or_else(PoisonError::into_inner);
        state.pending.extend(dirs);
        if state.running || state.pending.is_empty() {
            return;
        }
        state.running = true;
        let shared = Arc::clone(&self.shared);
        let spawned = std::thread::Builder::new()
            .name("config-backup-gc".into())
            .spawn(move || work(&shared));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the maintenance thread; the next run asks again");
            state.running = false;
        }
    }

    /// Blocks until no maintenance is running or asked for (benchmarks and tests, which
    /// measure or inspect what comes after).
    pub fn wait_idle(&self) {
        let (lock, idle) = &*self.shared;
        let state = lock.lock().unwrap_or_else(PoisonError::into_inner);
        drop(
            idle.wait_while(state, |s| s.running)
                .unwrap_or_else(PoisonError::into_inner),
        );
    }
}

fn work(shared: &(Mutex<State>, Condvar)) {
    let (lock, idle) = shared;
    loop {
        let batch = {
            let mut state = lock.lock().unwrap_or_else(PoisonError::into_inner);
            if state.pending.is_empty() {
                state.running = false;
                idle.notify_all();
                return;
            }
            std::mem::take(&mut state.pending)
        };
        for dir in batch {
            keep_compact(&dir);
        }
    }
}

/// Packs `dir`'s loose objects and rolls up its small packs, each only past git's limit.
fn keep_compact(dir: &Path) {
    // Opened once for both questions; when git2 cannot open it, git decides.
    let repo = git2::Repository::open(dir).ok();
    if repo.as_ref().is_none_or(too_many_loose) {
        run_git(
            dir,
            &[
                "-c",
                "gc.autoDetach=false",
                "-c",
                "gc.autoPackLimit=0",
                "gc",
                "--auto",
                "--quiet",
            ],
        );
    }
    // Packing the loose objects made one pack more.
    if repo.as_ref().is_some_and(too_many_packs) {
        run_git(dir, &["repack", "-d", "-l", "-q", "--geometric=2"]);
    }
}

/// `git -C dir args` when the git CLI is installed, waited for; never fails (a failure is
/// logged, and the next run asks again).
fn run_git(dir: &Path, args: &[&str]) {
    match std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => {}
        Ok(out) => tracing::warn!(
            dir = %dir.display(),
            command = %args.join(" "),
            stderr = %String::from_utf8_lossy(&out.stderr),
            "git housekeeping failed"
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::debug!("no git CLI: the repositories are not compacted");
        }
        Err(e) => tracing::warn!(error = %e, "git housekeeping could not run"),
    }
}

/// A setting of `dir`'s repository, or git's default.
fn setting(repo: &git2::Repository, name: &str, default: i64) -> i64 {
    repo.config().and_then(|c| c.get_i64(name)).unwrap_or(default)
}

/// Whether the repository has more loose objects than `gc.auto` (default 6,700; 0 turns
/// it off), estimated from `objects/17` as git does: most runs add a few objects, and
/// starting git twice a run to learn that was a fifth of a small site's no-change run.
fn too_many_loose(repo: &git2::Repository) -> bool {
    let limit = setting(repo, "gc.auto", 6700);
    let loose = std::fs::read_dir(repo.path().join("objects/17")).map_or(0, |d| {
        d.filter_map(Result::ok).filter(|e| e.file_name().len() == 38).count() as i64
    });
    limit > 0 && loose > (limit + 255) / 256
}

/// Whether the repository has more packs not kept (no `.keep`) than `gc.autoPackLimit`
/// (default 50; 0 turns it off, as does `gc.auto=0`). Each push to a local remote leaves
/// a pack.
fn too_many_packs(repo: &git2::Repository) -> bool {
    let limit = setting(repo, "gc.autoPackLimit", 50);
    if limit <= 0 || setting(repo, "gc.auto", 6700) <= 0 {
        return false;
    }
    let packs = std::fs::read_dir(repo.path().join("objects/pack")).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| {
                let p = e.path();
                p.extension().is_some_and(|x| x == "pack") && !p.with_extension("keep").exists()
            })
            .count() as i64
    });
    packs > limit
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn git(dir: &Path, args: &[&str], stdin: &str) -> String {
        use std::io::Write;
        let mut child = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    fn open(dir: &Path) -> git2::Repository {
        git2::Repository::open(dir).unwrap()
    }

    /// The pack files of `dir`'s repository.
    fn pack_files(dir: &Path) -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir.join(".git/objects/pack"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "pack"))
            .collect()
    }

    fn packs(dir: &Path) -> usize {
        pack_files(dir).len()
    }

    /// Three commits in three packs (of 2, 1 and 1 objects: small enough to be rolled
    /// up into one), in a repository whose `gc.autoPackLimit` is 2.
    fn packs_over_the_limit(dir: &Path) {
        git(dir, &["config", "gc.autoPackLimit", "2"], "");
        let who = ["-c", "user.name=t", "-c", "user.email=t@example.net"];
        for message in ["one", "two", "three"] {
            git(
                dir,
                &[&who[..], &["commit", "-q", "--allow-empty", "-m", message]].concat(),
                "",
            );
            git(dir, &["repack", "-q"], "");
        }
        assert_eq!(packs(dir), 3);
    }

    #[test]
    fn housekeeping_is_wanted_past_gits_own_limits_and_not_below() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        git(dir, &["init", "-q"], "");
        assert!(
            !too_many_loose(&open(dir)) && !too_many_packs(&open(dir)),
            "a new repository"
        );
        // Loose objects: git counts `objects/17` and scales by 256.
        let repo = git2::Repository::open(dir).unwrap();
        let mut in_17 = 0;
        for i in 0.. {
            let id = repo.blob(format!("blob {i}").as_bytes()).unwrap();
            if id.as_bytes()[0] == 0x17 {
                in_17 += 1;
                if in_17 == 2 {
                    break;
                }
            }
        }
        git(dir, &["config", "gc.auto", "256"], "");
        assert!(
            too_many_loose(&open(dir)),
            "2 loose objects in 17/ is more than 256 / 256"
        );
        git(dir, &["config", "gc.auto", "512"], "");
        assert!(!too_many_loose(&open(dir)), "and not more than 512 / 256");
        git(dir, &["config", "gc.auto", "0"], "");
        assert!(!too_many_loose(&open(dir)), "gc.auto=0 turns it off");
        git(dir, &["config", "--unset", "gc.auto"], "");
        // Packs: more than gc.autoPackLimit, a kept one not counted.
        packs_over_the_limit(dir);
        assert!(too_many_packs(&open(dir)), "3 packs, the limit 2");
        git(dir, &["config", "gc.auto", "0"], "");
        assert!(!too_many_packs(&open(dir)), "gc.auto=0 turns it all off");
        git(dir, &["config", "--unset", "gc.auto"], "");
        let pack = pack_files(dir).remove(0);
        std::fs::write(pack.with_extension("keep"), "").unwrap();
        assert!(!too_many_packs(&open(dir)), "one of them kept");
    }

    /// Past the pack limit, the small packs are rolled up into one and the large pack of
    /// the history is left as it was (not rewritten): a push's pack does not cost a
    /// rewrite of everything before it.
    #[test]
    fn small_packs_past_the_limit_are_rolled_up_and_the_history_pack_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        git(dir, &["init", "-q"], "");
        let who = ["-c", "user.name=t", "-c", "user.email=t@example.net"];
        for i in 0..200 {
            std::fs::write(dir.join(format!("f{i}")), format!("file {i}\n")).unwrap();
        }
        git(dir, &["add", "-A"], "");
        git(dir, &[&who[..], &["commit", "-q", "-m", "history"]].concat(), "");
        git(dir, &["repack", "-q"], "");
        let history_pack = pack_files(dir).remove(0);
        // Packs are written once, aside, then renamed: a rewrite is a new file. (git
        // touches a pack's time to keep it fresh, so the time is no witness.)
        use std::os::unix::fs::MetadataExt;
        let written = std::fs::metadata(&history_pack).unwrap().ino();
        git(dir, &["config", "gc.autoPackLimit", "3"], "");
        for i in 0..3 {
            std::fs::write(dir.join("f0"), format!("change {i}\n")).unwrap();
            git(dir, &[&who[..], &["commit", "-q", "-am", "change"]].concat(), "");
            git(dir, &["repack", "-q"], "");
        }
        assert_eq!(packs(dir), 4);
        let objects = |dir: &Path| git(dir, &["rev-list", "--objects", "--all"], "").lines().count();
        let before = objects(dir);

        keep_compact(dir);

        assert_eq!(packs(dir), 2, "the three small packs rolled up into one");
        assert_eq!(
            std::fs::metadata(&history_pack).unwrap().ino(),
            written,
            "the history's pack was rewritten"
        );
        assert_eq!(objects(dir), before);
        git(dir, &["fsck", "--no-progress"], "");
        assert!(!too_many_packs(&open(dir)));
    }

    /// Two repositories asked for back to back (the second while the thread works on
    /// the first): both are repacked when `wait_idle` returns.
    #[test]
    fn every_repository_asked_for_is_repacked_before_idle() {
        let m = Maintenance::default();
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        for dir in &dirs {
            git(dir.path(), &["init", "-q"], "");
            packs_over_the_limit(dir.path());
        }
        m.request([dirs[0].path().to_path_buf()]);
        m.request([dirs[1].path().to_path_buf()]);
        m.wait_idle();
        for dir in &dirs {
            assert_eq!(packs(dir.path()), 1, "{} was not repacked", dir.path().display());
        }
    }
}
