//! Diff: the difference between two commits, made once and shared by every caller that
//! asks for it again (an operator reopening a change, a console refreshing it).
//!
//! Invariant: what a Diff shows is a function of the two commits (immutable: their trees,
//! manifests and metadata), the query's filters and caps, and this process's sealing
//! rules (fixed for its life), so a kept answer is exact for as long as it is kept. A
//! diff with `reveal_secrets` is never kept: plaintext secrets do not outlive their call.
//! The answers kept weigh at most [`CACHED_BYTES`] in all (an answer heavier than that is
//! not kept) and number at most [`CACHED_DIFFS`]; a failed diff is not kept.

use std::collections::VecDeque;

use git2::Oid;

use super::*;
use crate::diff::DiffLimits;
use crate::domain::RepoPath;

/// At most this many answers are kept (oldest dropped first).
pub const CACHED_DIFFS: usize = 16;

/// At most this much, in all answers kept, by [`weight`].
pub const CACHED_BYTES: usize = 32 << 20;

/// About what an answer holds in memory: each file's path, patch and words, and the
/// fixed part of its record. A diff of many files with no patch (a first commit against
/// a late one at a large site) weighs by its files, not only by its patches.
fn weight(r: &DiffResult) -> usize {
    r.files
        .iter()
        .map(|f| {
            std::mem::size_of::<crate::diff::FileDiff>()
                + f.path.len()
                + f.patch.len()
                + f.summary.summary.len()
                + f.summary.changes.len() * 64
                + f.metadata_changes.iter().map(|w| w.len() + 24).sum::<usize>()
        })
        .sum()
}

/// What one answer is made of: the resolved commits (a prefix may resolve to another
/// commit once more commits exist), the filters and the caps.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    commit1: Oid,
    commit2: Oid,
    domain: Option<Domain>,
    path: Option<RepoPath>,
    limits: DiffLimits,
}

/// One answer, made once; callers that arrive while it is made wait for that one diff.
#[derive(Debug)]
struct Made {
    key: Key,
    result: std::sync::OnceLock<Arc<DiffResult>>,
    /// Serialises its making: the first caller makes it, the others wait.
    making: std::sync::Mutex<()>,
}

/// The answers made lately, oldest first.
#[derive(Debug, Default)]
pub(super) struct DiffCache {
    made: std::sync::Mutex<VecDeque<Arc<Made>>>,
}

impl DiffCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Made>>> {
        self.made.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The answer for `key`: kept, or made by `make` (on this blocking thread) and kept.
    fn get_or_make(
        &self,
        key: Key,
        make: impl FnOnce() -> Result<DiffResult, EngineError>,
    ) -> Result<Arc<DiffResult>, EngineError> {
        let slot = {
            let mut made = self.lock();
            match made.iter().find(|m| m.key == key) {
                Some(m) => m.clone(),
                None => {
                    let m = Arc::new(Made {
                        key,
                        result: Default::default(),
                        making: Default::default(),
                    });
                    made.push_back(m.clone());
                    m
                }
            }
        };
        let _making = slot.making.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = slot.result.get() {
            return Ok(r.clone());
        }
        match make() {
            Ok(result) => {
                let result = Arc::new(result);
                let _ = slot.result.set(result.clone());
                self.trim();
                Ok(result)
            }
            Err(e) => {
                // Not kept: the next caller tries again.
                self.lock().retain(|m| !Arc::ptr_eq(m, &slot));
                Err(e)
            }
        }
    }

    /// Drops the oldest answers beyond the caps (answers still being made weigh nothing).
    fn trim(&self) {
        let mut made = self.lock();
        let weighs = |m: &Made| m.result.get().map_or(0, |r| weight(r));
        let mut held: usize = made.iter().map(|m| weighs(m)).sum();
        while made.len() > CACHED_DIFFS || held > CACHED_BYTES {
            let Some(old) = made.pop_front() else { break };
            held -= weighs(&old);
        }
    }
}

impl Engine {
    /// The difference between two commits, secrets redacted. With `reveal_secrets` (the
    /// caller checked that `actor` may), secrets are shown in clear and the call is
    /// recorded in the audit trail first: no reveal goes unrecorded. A diff asked for
    /// again is the one made before (see the module's invariant).
    pub async fn diff(&self, query: DiffQuery, actor: &Actor) -> Result<Arc<DiffResult>, EngineError> {
        let git = self.inner.settings.git.clone();
        let engine = self.clone();
        let reveal = query.reveal_secrets;
        let (domain, path) = (query.domain, query.path.clone());
        let result = blocking(move || -> Result<Arc<DiffResult>, EngineError> {
            let wc = WorkingCopy::open_existing(&git)?
                .ok_or_else(|| EngineError::NotFound("the backup repository has no commit yet".to_owned()))?;
            let (commit1, commit2) = crate::diff::resolve_pair(wc.repository(), &query)?;
            let sealer = &engine.inner.sealer;
            let make = || crate::diff::diff_between(&wc, sealer, commit1, commit2, &query);
            if query.reveal_secrets {
                return make().map(Arc::new);
            }
            let key = Key {
                commit1,
                commit2,
                domain: query.domain,
                path: query.path.clone(),
                limits: query.limits,
            };
            engine.inner.diffs.get_or_make(key, make)
        })
        .await??;
        if reveal {
            let record = crate::store::SecretReveal {
                id: Uuid::now_v7(),
                revealed_at: Utc::now(),
                revealed_by: actor.as_audit().to_owned(),
                commit1: result.commit1.to_string(),
                commit2: result.commit2.to_string(),
                domain,
                path: path.map(|p| p.to_string()),
            };
            self.inner.store.record_secret_reveal(&record).await?;
            tracing::warn!(
                by = %record.revealed_by,
                commit1 = %record.commit1,
                commit2 = %record.commit2,
                "secrets revealed in a diff (recorded in the audit trail)"
            );
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        Key {
            commit1: Oid::from_bytes(&[n; 20]).unwrap(),
            commit2: Oid::from_bytes(&[n + 1; 20]).unwrap(),
            domain: None,
            path: None,
            limits: DiffLimits::default(),
        }
    }

    fn result(patch_bytes: usize) -> DiffResult {
        let c: CommitHash = Oid::from_bytes(&[1; 20]).unwrap().into();
        DiffResult {
            commit1: c.clone(),
            commit2: c,
            files: vec![crate::diff::FileDiff {
                path: "config/kea/kea-dhcp4.conf".into(),
                domain: Some(Domain::Kea),
                kind: ChangeKind::Modified,
                additions: 1,
                deletions: 1,
                patch: "x".repeat(patch_bytes),
                binary: false,
                truncated: false,
                sealed: false,
                old_mode: None,
                new_mode: None,
                metadata_changes: Vec::new(),
                summary: Default::default(),
            }],
            additions: 1,
            deletions: 1,
            truncated: false,
        }
    }

    #[test]
    fn a_diff_asked_again_is_made_once_and_a_failed_one_is_not_kept() {
        let cache = DiffCache::default();
        let made = std::cell::Cell::new(0);
        let make = || {
            made.set(made.get() + 1);
            Ok(result(10))
        };
        let a = cache.get_or_make(key(1), make).unwrap();
        let b = cache.get_or_make(key(1), make).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(made.get(), 1);
        let other = Key {
            path: Some("config/kea/kea-dhcp4.conf".parse().unwrap()),
            ..key(1)
        };
        cache.get_or_make(other, make).unwrap();
        assert_eq!(made.get(), 2, "another filter is another diff");

        let fails = || Err(EngineError::Internal("boom".into()));
        assert!(cache.get_or_make(key(3), fails).is_err());
        cache.get_or_make(key(3), make).unwrap();
        assert_eq!(made.get(), 3, "made again after a failure");
    }

    #[test]
    fn the_answers_kept_stay_within_their_caps() {
        let cache = DiffCache::default();
        for n in 0..(CACHED_DIFFS as u8 + 4) {
            cache.get_or_make(key(n * 2), || Ok(result(10))).unwrap();
        }
        assert_eq!(cache.lock().len(), CACHED_DIFFS);
        let big = CACHED_BYTES / 3 + 1;
        for n in 100..103 {
            cache.get_or_make(key(n), || Ok(result(big))).unwrap();
        }
        let held: usize = cache.lock().iter().map(|m| weight(m.result.get().unwrap())).sum();
        assert!(held <= CACHED_BYTES, "{held}");
        assert!(cache.lock().iter().any(|m| m.key == key(102)), "the newest is kept");
        // Many files without a patch weigh by their files.
        let mut wide = result(0);
        wide.files = vec![wide.files[0].clone(); CACHED_BYTES / 100];
        let wide = cache.get_or_make(key(200), || Ok(wide)).unwrap();
        assert!(weight(&wide) > CACHED_BYTES);
        assert!(!cache.lock().iter().any(|m| m.key == key(200)), "too heavy to keep");
    }
}
