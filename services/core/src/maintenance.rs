//! Housekeeping of the repositories, off the run's critical path: `git gc --auto` on the
//! working copy and on a remote that is a local directory, on a thread of its own, after
//! a run has recorded its result (git itself runs its auto-gc detached for the same
//! reason). A repack of a first backup's objects takes longer than the backup; nobody
//! waiting for the backup should wait for it.
//!
//! Safe to overlap the next run: git repacks with concurrent writers by design (new packs
//! are written aside and renamed; only loose objects already packed, and unreachable ones
//! weeks old, are removed), and one `gc.pid` per repository keeps two gcs apart.

use std::collections::BTreeSet;
use std::path::PathBuf;
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
    /// Asks for `git gc --auto` in each directory, on the maintenance thread.
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
            if wants_gc(&dir) {
                crate::repo::gc_auto(&dir);
            }
        }
    }
}

/// Whether `git gc --auto` would find work in `dir`, by git's own two tests and its
/// settings (`gc.auto`, default 6,700 loose objects, estimated from `objects/17` as git
/// does; `gc.autoPackLimit`, default 50 packs not kept): most runs add a few objects and
/// one pack, and starting git twice a run to learn that was a fifth of a small site's
/// no-change run. When in doubt (a repository git2 cannot open), git decides.
fn wants_gc(dir: &std::path::Path) -> bool {
    let Ok(repo) = git2::Repository::open(dir) else {
        return true;
    };
    let setting = |name: &str, default: i64| repo.config().and_then(|c| c.get_i64(name)).unwrap_or(default);
    let (loose_limit, pack_limit) = (setting("gc.auto", 6700), setting("gc.autoPackLimit", 50));
    if loose_limit <= 0 {
        // gc.auto=0 turns automatic gc off altogether.
        return false;
    }
    let objects = repo.path().join("objects");
    let loose = std::fs::read_dir(objects.join("17")).map_or(0, |d| {
        d.filter_map(Result::ok).filter(|e| e.file_name().len() == 38).count() as i64
    });
    if loose > (loose_limit + 255) / 256 {
        return true;
    }
    let pack_dir = objects.join("pack");
    let packs = std::fs::read_dir(&pack_dir).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| {
                let p = e.path();
                p.extension().is_some_and(|x| x == "pack") && !p.with_extension("keep").exists()
            })
            .count() as i64
    });
    pack_limit > 0 && packs > pack_limit
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

    fn packs(dir: &Path) -> usize {
        std::fs::read_dir(dir.join(".git/objects/pack"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "pack"))
            .count()
    }

    /// Two commits in two packs, in a repository whose `gc.autoPackLimit` is 1.
    fn two_packs_over_the_limit(dir: &Path) {
        git(dir, &["config", "gc.autoPackLimit", "1"], "");
        let who = ["-c", "user.name=t", "-c", "user.email=t@example.net"];
        for message in ["one", "two"] {
            git(
                dir,
                &[&who[..], &["commit", "-q", "--allow-empty", "-m", message]].concat(),
                "",
            );
            git(dir, &["repack", "-q"], "");
        }
        assert_eq!(packs(dir), 2);
    }

    #[test]
    fn gc_is_wanted_past_gits_own_limits_and_not_below() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        git(dir, &["init", "-q"], "");
        assert!(!wants_gc(dir), "a new repository");
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
        assert!(wants_gc(dir), "2 loose objects in 17/ is more than 256 / 256");
        git(dir, &["config", "gc.auto", "512"], "");
        assert!(!wants_gc(dir), "and not more than 512 / 256");
        git(dir, &["config", "gc.auto", "0"], "");
        assert!(!wants_gc(dir), "gc.auto=0 turns it off");
        git(dir, &["config", "--unset", "gc.auto"], "");
        // Packs: more than gc.autoPackLimit, a kept one not counted.
        two_packs_over_the_limit(dir);
        assert!(wants_gc(dir), "2 packs, the limit 1");
        let pack = std::fs::read_dir(dir.join(".git/objects/pack"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "pack"))
            .unwrap();
        std::fs::write(pack.with_extension("keep"), "").unwrap();
        assert!(!wants_gc(dir), "one of them kept");
    }

    /// Two repositories asked for back to back (the second while the thread works on
    /// the first): both are repacked when `wait_idle` returns.
    #[test]
    fn every_repository_asked_for_is_repacked_before_idle() {
        let m = Maintenance::default();
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        for dir in &dirs {
            git(dir.path(), &["init", "-q"], "");
            two_packs_over_the_limit(dir.path());
        }
        m.request([dirs[0].path().to_path_buf()]);
        m.request([dirs[1].path().to_path_buf()]);
        m.wait_idle();
        for dir in &dirs {
            assert_eq!(packs(dir.path()), 1, "{} was not repacked", dir.path().display());
        }
    }
}
